/** The `host:port` of a listener (`listen`, `metrics.listen`): its parts, and why it could not be listened on. */
export function splitListen(listen: string): { host: string; port: number } {
  const colon = listen.lastIndexOf(':');
  const host = listen.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  return { host, port: Number(listen.slice(colon + 1)) };
}

/** Why `listen` cannot be listened on, and the fix: the line after `derrick: cannot listen on <listen>: `. */
export function listenProblem(error: unknown, listen: string): string {
  const { host } = splitListen(listen);
  switch ((error as NodeJS.ErrnoException).code) {
    case 'EADDRINUSE':
      return 'the address is already in use; stop what is using it or pass --listen <host:port>';
    case 'EACCES':
      return `permission denied: ports below 1024 need root (or CAP_NET_BIND_SERVICE); pass --listen with a port from 1024 up, e.g. ${listen.slice(0, listen.lastIndexOf(':'))}:5000`;
    case 'EADDRNOTAVAIL':
      return `this machine has no address ${host}; pass --listen with one of its addresses (127.0.0.1, or 0.0.0.0 for all of them)`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `cannot resolve the host name ${host}; pass --listen with an IP address or a name this machine resolves`;
    default:
      return (error as Error).message;
  }
}
