/** A configuration file the auth settings name (a key, htpasswd, CA bundle) that cannot be used: key, file, why. */
export class AuthConfigError extends Error {
  constructor(
    readonly key: string,
    message: string,
  ) {
    super(`${key}: ${message}`);
    this.name = 'AuthConfigError';
  }
}
