// Concurrency keys and limits from Node.js: a limit is set and listed, a keyed task over it waits
// while the key's usage reads back, and the limit is deleted, against a real broker started by
// this test.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { BrokerClient, grpc } from '../src/index.js';
import { startBroker } from '../testing/broker.js';

let broker;
let client;

before(async () => {
  broker = await startBroker();
  client = new BrokerClient(broker.address, { timeoutMs: 10000 });
});

after(async () => {
  client?.close();
  await broker?.stop();
});

test('a limit holds a key back, its usage reads back, and it is deleted', { timeout: 30000 }, async () => {
  const made = await client.setConcurrencyLimit({ name: 'tenants', key: 'tenant-*', maxRunning: 1, rate: 5, per: 60 });
  assert.equal(made.burst, 5);
  assert.equal(Number(made.per.seconds), 60);
  assert.deepEqual((await client.listConcurrencyLimits()).map((x) => x.name), ['tenants']);
  await client.register({ agentId: 'node-w', capabilities: ['sum'], maxConcurrentTasks: 5 });
  const { task } = await client.submit({ title: 'a', requiredCapabilities: ['sum'], concurrencyKey: 'tenant-1' });
  assert.equal(task.spec.concurrencyKey, 'tenant-1');
  await client.submit({ title: 'b', requiredCapabilities: ['sum'], concurrencyKey: 'tenant-1' });
  const got = (await client.claim('node-w', { maxTasks: 5 })).assignments;
  assert.deepEqual(got.map((a) => a.task.taskId), [task.taskId]);
  const [k] = await client.listConcurrencyKeys({ prefix: 'tenant-' });
  assert.deepEqual([k.key, k.running, k.waiting, k.limit, k.maxRunning], ['tenant-1', 1, 1, 'tenants', 1]);
  await assert.rejects(
    client.setConcurrencyLimit({ name: 'bad', key: 'a', rate: 3 }),
    (err) => err.code === grpc.status.INVALID_ARGUMENT && err.message.includes('per: a rate needs its period'),
  );
  await client.deleteConcurrencyLimit('tenants');
  assert.deepEqual(await client.listConcurrencyLimits(), []);
  await assert.rejects(client.deleteConcurrencyLimit('tenants'), (err) => err.code === grpc.status.NOT_FOUND);
});
