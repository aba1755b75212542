/**
 * The S3 settings of the tools (publish, gc, verify…), which take no configuration file: the same keys as serve's
 * `s3.*`, from the same variables (`DERRICK_S3_ADDRESSING`, `DERRICK_S3_MAX_ATTEMPTS`). Endpoint, region and
 * credentials come from the standard AWS variables and files, read by the SDK itself.
 */
import { InvalidArgumentError } from 'commander';
import { envName } from '../config/keys.ts';
import { DEFAULT_S3_SETTINGS, type S3Settings } from '../store/open-backend.ts';

export function s3SettingsFromEnv(env: NodeJS.ProcessEnv): S3Settings {
  const addressingVariable = envName('s3.addressing');
  const attemptsVariable = envName('s3.maxAttempts');
  const addressing = env[addressingVariable] ?? DEFAULT_S3_SETTINGS.addressing;
  if (addressing !== 'auto' && addressing !== 'path' && addressing !== 'virtual')
    throw new InvalidArgumentError(`${addressingVariable}=${addressing}: expected auto, path or virtual`);
  const attemptsText = env[attemptsVariable];
  const maxAttempts = attemptsText === undefined ? DEFAULT_S3_SETTINGS.maxAttempts : Number(attemptsText);
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1)
    throw new InvalidArgumentError(`${attemptsVariable}=${attemptsText ?? ''}: expected a whole number ≥ 1`);
  return { addressing, maxAttempts };
}
