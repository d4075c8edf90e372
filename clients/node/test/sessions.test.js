// Orchestration sessions from Node.js: create, read, list, close (ending once the tasks finish)
// and cancel, against a real broker started by this test.

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

test('a session is created, fills, closes, completes; another is cancelled with its tasks', { timeout: 30000 }, async () => {
  await client.register({ agentId: 'node-worker', capabilities: ['sum'], maxConcurrentTasks: 2 });
  const s = await client.createSession({
    sessionId: 'node-q3', name: 'Q3', initiatedBy: 'node-planner', labels: { team: 'js' }, context: { goal: 'report', n: 2 },
  });
  assert.equal(s.status, 'SESSION_STATUS_ACTIVE');
  assert.equal(s.context.fields.goal.stringValue, 'report');
  const { task } = await client.submit({ title: 'add', requiredCapabilities: ['sum'], sessionId: 'node-q3' });
  assert.equal((await client.closeSession('node-q3', { summary: 'all in' })).status, 'SESSION_STATUS_ACTIVE');
  const [a] = (await client.claim('node-worker')).assignments;
  assert.equal(a.task.taskId, task.taskId);
  await client.complete(a.task.taskId, 'node-worker', a.attempt, '42');
  const done = await client.getSession('node-q3');
  assert.equal(done.status, 'SESSION_STATUS_COMPLETED');
  assert.deepEqual(done.taskCounts, { completed: 1 });
  await assert.rejects(
    client.submit({ title: 'late', sessionId: 'node-q3' }),
    (err) => err.code === grpc.status.FAILED_PRECONDITION,
  );

  const other = await client.createSession({ name: 'scratch' });
  const { task: waiting } = await client.submit({ title: 'wait', requiredCapabilities: ['nobody'], sessionId: other.sessionId });
  const cancelled = await client.cancelSession(other.sessionId, { reason: 'not needed' });
  assert.deepEqual(cancelled.cancelledTaskIds, [waiting.taskId]);
  assert.equal(cancelled.session.status, 'SESSION_STATUS_CANCELLED');
  const page = await client.listSessions({ status: 'SESSION_STATUS_CANCELLED' });
  assert.deepEqual(page.sessions.map((x) => x.sessionId), [other.sessionId]);
});
