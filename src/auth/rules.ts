/**
 * Access rules: ordered `{ match: <glob over names>, pull: [who…] }`, the first rule whose glob matches a
 * repository's name decides, and a name no rule matches is denied. `who` is `anonymous` (everyone),
 * `authenticated` (anyone who proved an identity), `user:<name>`, `cert:<identity>` or `group:<name>`. A record
 * published `protected: true` is never pulled anonymously: there `anonymous` counts as `authenticated`.
 * With no rules at all, everything is `anonymous` (a registry without access control, as before rules existed).
 */
import { compileGlobs } from '../config/globs.ts';
import { AuthConfigError } from './errors.ts';

export interface AccessRule {
  match: string;
  pull: readonly string[];
}

/** Who is asking: the identities proved (`user:alice`, `cert:ci.example.com`); none for anonymous. */
export type Identities = readonly string[];

interface CompiledRule {
  test: (name: string) => boolean;
  anonymous: boolean;
  authenticated: boolean;
  /** user:/cert: identities, direct or through a group. */
  members: ReadonlySet<string>;
}

const OPEN: readonly AccessRule[] = [{ match: '**', pull: ['anonymous'] }];

export class AccessRules {
  private readonly rules: CompiledRule[];

  /** Compiles the rules; a group that is not defined is an AuthConfigError naming the rule. */
  constructor(rules: readonly AccessRule[], groups: Readonly<Record<string, readonly string[]>>) {
    const given = rules.length === 0 ? OPEN : rules;
    // With no rules, OPEN's `**` matches every name: no glob to compile (nor picomatch to load).
    const tests = compileGlobs(
      rules.map((rule) => rule.match),
      { dot: true },
    );
    this.rules = given.map((rule, index) => {
      const members = new Set<string>();
      for (const who of rule.pull) {
        if (!who.startsWith('group:')) {
          if (who.includes(':')) members.add(who);
          continue;
        }
        const group = groups[who.slice('group:'.length)];
        if (group === undefined)
          throw new AuthConfigError(
            `access.${index}.pull`,
            `${who} is not defined under auth.groups (define it, or name users directly)`,
          );
        for (const member of group) members.add(member);
      }
      return {
        test: tests[index] ?? (() => true),
        anonymous: rule.pull.includes('anonymous'),
        authenticated: rule.pull.includes('authenticated'),
        members,
      };
    });
  }

  private ruleFor(name: string): CompiledRule | undefined {
    return this.rules.find((rule) => rule.test(name));
  }

  /** Whether `who` (none = anonymous) may pull `name`, whose record is `protectedRecord` (or unknown: false). */
  allows(who: Identities, name: string, protectedRecord: boolean): boolean {
    const rule = this.ruleFor(name);
    if (!rule) return false;
    if (who.length === 0) return rule.anonymous && !protectedRecord;
    if (rule.anonymous || rule.authenticated) return true;
    return who.some((identity) => rule.members.has(identity));
  }
}
