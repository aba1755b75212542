// Builds the demo image checked in at demo/hello: a two-platform OCI index (linux/amd64, linux/arm64), each
// image one small layer, tagged "latest". Deterministic: run it again and the digests stay the same.
import { rmSync } from 'node:fs';
import { LayoutBuilder } from './oci-builder.ts';

const dir = new URL('../demo/hello', import.meta.url).pathname;
rmSync(dir, { recursive: true, force: true });
const builder = new LayoutBuilder(dir);
const children = [];
for (const architecture of ['amd64', 'arm64']) {
  children.push(
    await builder.image({
      platform: { os: 'linux', architecture },
      files: {
        'hello.txt': `Hello from derrick, the database-free container registry (linux/${architecture}).\n`,
        'etc/os-release': 'NAME="derrick demo"\nID=derrick-demo\n',
      },
      cmd: ['/bin/cat', '/hello.txt'],
    }),
  );
}
const index = builder.index(children);
builder.add(index, 'latest').write();
console.log(`wrote ${dir} (latest = ${index.digest})`);
