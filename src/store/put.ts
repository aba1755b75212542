/** Storing verified content in one step, for writers with nothing to commit alongside it (copy-tree). */
import type { Backend, Input, PutOptions } from './backend.ts';

export async function putVerified(
  backend: Backend,
  key: string,
  input: Input,
  digest: string,
  options: PutOptions,
): Promise<void> {
  const pending = await backend.stage(key, input, digest, options);
  await pending.commit();
}
