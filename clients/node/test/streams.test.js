// consume() and work(): acks, nacks and task outcomes on the same stream (Consume, Work), against
// a real broker started by this test.

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

// The first item, leaving the stream open (leaving a `for await` loop would cancel it).
async function first(stream) {
  const { value, done } = await stream[Symbol.asyncIterator]().next();
  if (done) throw new Error('the stream ended');
  return value;
}

test('consume acks on the stream once committed, and refuses another agent\'s message alone', { timeout: 30000 }, async () => {
  for (const agentId of ['c-sender', 'c-reader', 'c-other']) await client.register({ agentId, maxConcurrentTasks: 1 });
  const theirs = (await client.send('c-sender', 'c-other', 'not yours')).messageIds[0];
  const mine = (await client.send('c-sender', 'c-reader', { hello: 'stream' })).messageIds[0];
  const stream = client.consume('c-reader');
  const msg = await first(stream);
  assert.equal(msg.messageId, mine);
  assert.equal(stream.inBand, true);
  await assert.rejects(stream.ack(theirs), (err) => err.code === grpc.status.PERMISSION_DENIED);
  assert.equal(await stream.ack(mine), 1); // the stream went on
  assert.equal((await client.getMessage(mine)).status, 'MESSAGE_STATUS_PROCESSED');
  assert.equal((await client.getMessage(theirs)).status, 'MESSAGE_STATUS_PENDING');
  stream.cancel();
});

test('consume nacks and rejects on the stream', { timeout: 30000 }, async () => {
  await client.register({ agentId: 'n-reader', maxConcurrentTasks: 1 });
  const id = (await client.send('n-reader', 'n-reader', 'bad')).messageIds[0];
  const stream = client.consume('n-reader');
  await first(stream);
  assert.deepEqual(await stream.nack(id, { reject: true, reason: 'malformed' }), { requeued: 0, deadLettered: 1 });
  assert.equal((await client.getMessage(id)).status, 'MESSAGE_STATUS_FAILED');
  stream.cancel();
});

test('work completes on the stream, and a stale attempt is refused', { timeout: 30000 }, async () => {
  await client.register({ agentId: 'w-node', maxConcurrentTasks: 1 });
  const taskId = (await client.submit({ title: 'node work' })).task.taskId;
  const stream = client.work('w-node');
  const ev = await first(stream);
  const [a] = ev.assignments;
  assert.equal(a.task.taskId, taskId);
  const ext = await stream.extendLease(taskId, a.attempt, { progress: 50 });
  assert.ok(ext.leaseExpiresAt);
  await assert.rejects(stream.complete(taskId, a.attempt + 1, 'stale'), (err) => err.code === grpc.status.FAILED_PRECONDITION);
  const done = await stream.complete(taskId, a.attempt, { answer: 42 });
  assert.equal(done.task.status, 'TASK_STATUS_COMPLETED');
  assert.equal((await client.getTask(taskId)).status, 'TASK_STATUS_COMPLETED');
  stream.cancel();
});

test('work sends outcomes given together in one request, each judged on its own', { timeout: 30000 }, async () => {
  await client.register({ agentId: 'w-batch', maxConcurrentTasks: 3 });
  const ids = [];
  for (const title of ['one', 'two', 'three']) ids.push((await client.submit({ title })).task.taskId);
  const stream = client.work('w-batch');
  const it = stream[Symbol.asyncIterator]();
  const got = [];
  while (got.length < 3) got.push(...(await it.next()).value.assignments);
  const byId = new Map(got.map((a) => [a.task.taskId, a]));
  const [a, b, c] = ids.map((id) => byId.get(id));
  const written = [];
  const realWrite = stream.call.write.bind(stream.call);
  stream.call.write = (req) => {
    written.push(req);
    return realWrite(req);
  };
  const [done, stale, failed] = await Promise.allSettled([
    stream.complete(a.task.taskId, a.attempt, 'A'),
    stream.complete(b.task.taskId, b.attempt + 1, 'stale'),
    stream.fail(c.task.taskId, c.attempt, 'boom', { nonRetryable: true }),
  ]);
  assert.equal(done.value.task.status, 'TASK_STATUS_COMPLETED');
  assert.equal(stale.reason.code, grpc.status.FAILED_PRECONDITION);
  assert.equal(failed.value.task.status, 'TASK_STATUS_FAILED');
  assert.equal(written.length, 1); // one request for the three
  assert.equal(written[0].outcomes.length, 3);
  assert.equal((await client.getTask(b.task.taskId)).status, 'TASK_STATUS_RUNNING'); // nothing changed
  stream.cancel();
});

test('consume ackLater commits without a confirmation frame', { timeout: 30000 }, async () => {
  for (const agentId of ['l-sender', 'l-reader']) await client.register({ agentId, maxConcurrentTasks: 1 });
  const id = (await client.send('l-sender', 'l-reader', 'later')).messageIds[0];
  const stream = client.consume('l-reader');
  assert.equal((await first(stream)).messageId, id);
  assert.equal(stream.ackLater(id), true);
  assert.equal(await stream.ack([]), 0); // confirmed: the earlier one is committed too
  assert.equal((await client.getMessage(id)).status, 'MESSAGE_STATUS_PROCESSED');
  stream.cancel();
});
