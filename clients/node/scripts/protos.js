// `npm pack` ships the broker's .proto files inside the package: `prepack` copies the
// repository's protos/ into ./protos (git-ignored, never committed), `postpack` removes the copy.
//
//   node scripts/protos.js copy | clean

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const pkg = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const source = path.resolve(pkg, '..', '..', 'protos');
const target = path.join(pkg, 'protos');

const command = process.argv[2];
if (command === 'copy') {
  if (!fs.existsSync(path.join(source, 'a2a', 'broker', 'v1', 'agents.proto'))) {
    console.error(`no protos at ${source}: pack from clients/node in the a2a-broker repository`);
    process.exit(1);
  }
  fs.rmSync(target, { recursive: true, force: true });
  fs.cpSync(source, target, { recursive: true, filter: (p) => fs.statSync(p).isDirectory() || p.endsWith('.proto') });
} else if (command === 'clean') {
  fs.rmSync(target, { recursive: true, force: true });
} else {
  console.error('usage: node scripts/protos.js copy | clean');
  process.exit(2);
}
