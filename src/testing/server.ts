import type http from 'node:http';
import type { Socket } from 'node:net';

/**
 * Stops a test server for good: no new connections, every open one (keep-alive, stalled bodies) destroyed, resolved
 * once the server has closed, or after 2 s whatever happens (server.close() waits for sockets that may never end).
 */
export function closeServer(server: http.Server, sockets: Set<Socket>): Promise<void> {
  return new Promise<void>((resolve) => {
    const fallback = setTimeout(resolve, 2000);
    server.close(() => {
      clearTimeout(fallback);
      resolve();
    });
    server.closeAllConnections();
    for (const s of sockets) s.destroy();
  });
}
