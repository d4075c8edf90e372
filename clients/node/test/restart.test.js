// The Agent helper across broker outages: a completion made while the broker is
// down gets in once it is back (the task is not run twice), and an Agent started
// before the broker waits for it, then registers.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, test } from 'node:test';

import { Agent, BrokerClient, toDate } from '../src/index.js';
import { freePort, startBroker } from '../testing/broker.js';

// The Agent used to try Complete once: more refused calls than that prove it keeps trying.
const REFUSED_CALLS_TO_SEE = 5;
const cleanups = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

const within = (ms, promise, what) =>
  Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms).unref()),
  ]);

function deferred() {
  let resolve;
  const promise = new Promise((r) => (resolve = r));
  return { promise, resolve };
}

async function waitForTask(client, taskId, status, ms = 20000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const task = await client.getTask(taskId);
    if (task.status === status) return task;
    if (Date.now() > deadline) throw new Error(`task ${taskId} is ${task.status}, not ${status}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('a completion made while the broker is down lands after it restarts', { timeout: 60000 }, async () => {
  const first = await startBroker();
  const brokers = [first];
  cleanups.push(async () => {
    for (const b of brokers) await b.kill();
    fs.rmSync(first.dir, { recursive: true, force: true });
  });
  const agentClient = new BrokerClient(first.address, { timeoutMs: 5000 });
  const client = new BrokerClient(first.address, { timeoutMs: 5000 });
  cleanups.push(async () => {
    agentClient.close();
    client.close();
  });
  const started = deferred();
  const release = deferred();
  const enoughRefusals = deferred();
  const runs = [];
  let refused = 0;
  const realComplete = agentClient.complete.bind(agentClient);
  agentClient.complete = async (...args) => {
    try {
      return await realComplete(...args);
    } catch (err) {
      if (++refused >= REFUSED_CALLS_TO_SEE) enoughRefusals.resolve();
      throw err;
    }
  };
  const agent = new Agent({
    client: agentClient,
    agentId: 'node-restart',
    onTask: async (ctx) => {
      runs.push(ctx.attempt);
      started.resolve();
      await release.promise;
      return { attempt: ctx.attempt };
    },
  });
  await agent.start();
  const { task } = await client.submit({ title: 'survive', leaseTimeout: { seconds: 120 } });
  await within(10000, started.promise, 'handler start');
  await first.kill(); // the broker goes away while the handler works...
  release.resolve(); // ...and the handler finishes during the outage
  await within(20000, enoughRefusals.promise, `${REFUSED_CALLS_TO_SEE} refused Complete calls`);
  brokers.push(await startBroker({ port: first.port, dir: first.dir })); // back, same port and file
  const done = await waitForTask(client, task.taskId, 'TASK_STATUS_COMPLETED');
  assert.equal(done.attempt, 1);
  assert.deepEqual(runs, [1]); // completed by the first run, not run again
  // The agent sees the answer a moment after the broker commits.
  for (const deadline = Date.now() + 10000; agent.stats.completed !== 1 && Date.now() < deadline; ) {
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(agent.stats.completed, 1);
  await agent.stop({ drainMs: 2000 });
});

test('an Agent started before the broker waits for it, then registers', { timeout: 60000 }, async () => {
  const port = await freePort();
  const address = `127.0.0.1:${port}`;
  const agentClient = new BrokerClient(address, { timeoutMs: 5000 });
  const lines = [];
  const saidWaiting = deferred();
  const ran = deferred();
  const agent = new Agent({
    client: agentClient,
    agentId: 'node-early',
    capabilities: ['early'],
    log: (line) => {
      lines.push(line);
      if (/waiting for the broker/.test(line)) saidWaiting.resolve();
    },
    onTask: async () => {
      ran.resolve();
      return 'ran';
    },
  });
  const starting = agent.start();
  starting.catch(() => {});
  await within(10000, Promise.race([saidWaiting.promise, starting]), 'the agent to say it is waiting');
  const broker = await startBroker({ port });
  const client = new BrokerClient(address, { timeoutMs: 5000 });
  cleanups.push(async () => {
    client.close();
    agentClient.close();
    await broker.stop();
  });
  await within(20000, starting, 'the agent to register');
  const seen = await client.getAgent('node-early');
  assert.deepEqual(seen.capabilities, ['early']);
  assert.ok(toDate(seen.registeredAt) instanceof Date);
  const { task } = await client.submit({ title: 'first', requiredCapabilities: ['early'] });
  await within(10000, ran.promise, 'the task to run');
  await waitForTask(client, task.taskId, 'TASK_STATUS_COMPLETED');
  assert.equal(lines.filter((l) => /waiting for the broker/.test(l)).length, 1, lines.join('\n'));
  await agent.stop({ drainMs: 2000 });
});
