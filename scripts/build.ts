/**
 * `npm run build`: the CLI as one bundle (esbuild) instead of tsc's one file per module — start-up is mostly module
 * resolution and loading, and a bundle resolves nothing at run time.
 *
 *   dist/cli/main.js           the entry (bin/derrick.js imports it; cluster workers re-run that same bin)
 *   dist/chunks/<name>-<hash>.js  what a command loads when it runs (`derrick serve`'s server, the publisher, the
 *                              S3 back end and its SDK, …): every dynamic import() of src/ stays one, so a command
 *                              pays only for its own modules and a tree on a file system never loads the S3 SDK
 *   dist/**\/*.js.map           source maps (without the sources: positions are what stack traces need), used
 *                              with DERRICK_DEBUG or --enable-source-maps
 *   dist/meta.json             esbuild's metafile: which sources and packages went into which file (tests read it)
 *
 * Both entry and chunks sit two levels below the package root, where src/cli/version.ts looks for package.json.
 * yaml and picomatch stay outside (src/ loads them with createRequire, synchronously, only when used). zod's
 * locales are cut to English (englishOnlyZod).
 */
import { build, type Plugin } from 'esbuild';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '..');
const DIST = path.join(ROOT, 'dist');

// The CommonJS packages bundled into ESM call require() for Node's built-ins: give every output file a real one.
const REQUIRE_BANNER =
  "import { createRequire as __derrickCreateRequire } from 'node:module';\n" +
  'const require = __derrickCreateRequire(import.meta.url);';

/**
 * zod's `z.locales` namespace imports its error messages in every language, over half of zod in the bundle
 * (~260 kB minified, parsed at every start of serve and publish); derrick's messages are English (zod's default,
 * which zod imports on its own) and it never reads `z.locales`: only `en` is kept there.
 */
const englishOnlyZod: Plugin = {
  name: 'english-only-zod',
  setup(esbuild) {
    esbuild.onLoad({ filter: /[\\/]node_modules[\\/]zod[\\/]v4[\\/]locales[\\/]index\.js$/ }, (args) => ({
      contents: "export { default as en } from './en.js';\n",
      loader: 'js',
      resolveDir: path.dirname(args.path),
    }));
  },
};

rmSync(DIST, { recursive: true, force: true });
const result = await build({
  absWorkingDir: ROOT,
  entryPoints: { 'cli/main': 'src/cli/main.ts' },
  outdir: DIST,
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20.11',
  // Smaller to parse and to hold in memory; names kept, since libraries (and error messages) read them.
  minify: true,
  keepNames: true,
  sourcemap: 'linked',
  sourcesContent: false,
  legalComments: 'none',
  banner: { js: REQUIRE_BANNER },
  metafile: true,
  plugins: [englishOnlyZod],
  logLevel: 'warning',
});
writeFileSync(path.join(DIST, 'meta.json'), `${JSON.stringify(result.metafile, null, 1)}\n`);
