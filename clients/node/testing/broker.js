// Test support: a real broker (`python -m broker serve`) on a free port with a
// temporary database, and a runner for the Python helper script.

import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(here, '..', '..', '..');
export const PYTHON = process.env.A2A_BROKER_PYTHON ?? path.join(REPO, '.venv', 'bin', 'python');

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function canConnect(port) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

/** A free port on 127.0.0.1 (e.g. to start a broker there later). */
export { freePort };

/**
 * Start a broker; resolves to {address, port, dir, stop(), kill()} once it accepts connections.
 * Pass {port, dir} to start one where a killed broker was (same port, same database).
 */
export async function startBroker({ timeoutMs = 20000, port: wanted, dir: reuse, env: extraEnv = {} } = {}) {
  const dir = reuse ?? fs.mkdtempSync(path.join(os.tmpdir(), 'a2a-node-test-'));
  const port = wanted ?? (await freePort());
  const address = `127.0.0.1:${port}`;
  let stderr = '';
  const proc = spawn(PYTHON, ['-m', 'broker', 'serve'], {
    cwd: REPO,
    env: {
      ...process.env,
      A2A_BROKER_ADDRESS: address,
      A2A_BROKER_DB: path.join(dir, 'broker.db'),
      A2A_BROKER_SWEEPER_PERIOD_S: '0.1',
      A2A_BROKER_SQLITE_SYNCHRONOUS: 'NORMAL',
      A2A_BROKER_LOG_FORMAT: 'text',
      ...extraEnv,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  proc.stderr.on('data', (d) => {
    stderr = (stderr + d).slice(-4000);
  });
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  const deadline = Date.now() + timeoutMs;
  while (!(await canConnect(port))) {
    if (proc.exitCode !== null) throw new Error(`broker exited with ${proc.exitCode}: ${stderr}`);
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`broker did not listen within ${timeoutMs} ms: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    address,
    port,
    dir,
    /** SIGKILL, keeping the database for a restart. */
    async kill() {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGKILL');
        await exited;
      }
    },
    get stderr() {
      return stderr;
    },
    async stop() {
      if (proc.exitCode === null) {
        proc.kill('SIGTERM');
        const timer = setTimeout(() => proc.kill('SIGKILL'), 10000);
        await exited;
        clearTimeout(timer);
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

const run = promisify(execFile);

/** Run testing/pyside.py with the Python client; resolves to its JSON output. */
export async function pyside(address, ...args) {
  const { stdout } = await run(PYTHON, [path.join(here, 'pyside.py'), address, ...args], {
    cwd: REPO,
    timeout: 60000,
  });
  return JSON.parse(stdout);
}
