// Threads, list filters, agent records and max_run_time from Node.js, against a real broker
// started by this test.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { BrokerClient, duration } from '../src/index.js';
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

test('a reply joins the thread and conversations are listed', { timeout: 30000 }, async () => {
  for (const agentId of ['t-asker', 't-expert']) await client.register({ agentId, maxConcurrentTasks: 1 });
  const [questionId] = (await client.send('t-asker', 't-expert', 'why?', { conversationId: 'node-c', correlationId: 'q1' })).messageIds;
  const question = await client.getMessage(questionId);
  const [answerId] = (await client.reply(question, 'because')).messageIds;
  const answer = await client.getMessage(answerId);
  assert.deepEqual([answer.inReplyTo, answer.conversationId, answer.correlationId], [questionId, 'node-c', 'q1']);
  const { conversations } = await client.listConversations({ participant: 't-asker' });
  assert.deepEqual(conversations.map((c) => [c.conversationId, c.participants, c.messageCount]), [['node-c', ['t-asker', 't-expert'], 2]]);
});

test('tasks by type, max_run_time, and the agent record', { timeout: 30000 }, async () => {
  await client.register({ agentId: 't-worker', capabilities: ['t-cap'], maxConcurrentTasks: 1 });
  const { task } = await client.submit({ title: 'typed', taskType: 'node-type', requiredCapabilities: ['t-cap'], maxRunTime: duration(60) });
  assert.equal(task.spec.maxRunTime.seconds, '60');
  const { tasks } = await client.listTasks({ taskType: 'node-type' });
  assert.deepEqual(tasks.map((t) => t.taskId), [task.taskId]);
  const [a] = (await client.claim('t-worker')).assignments;
  await client.complete(a.task.taskId, 't-worker', a.attempt, 'ok');
  const agent = await client.getAgent('t-worker');
  assert.equal(agent.record.tasksCompleted, 1);
  assert.equal(agent.record.successRate, 1);
});

test('dependency edits, the optional kind and labels', { timeout: 30000 }, async () => {
  const pre = (await client.submit({ title: 'pre', requiredCapabilities: ['nobody'] })).task;
  const { task } = await client.submit({ title: 'edited', labels: { team: 'node' } });
  assert.deepEqual(task.spec.labels, { team: 'node' });
  const blocked = await client.addDependency(task.taskId, pre.taskId, { type: 'DEPENDENCY_TYPE_OPTIONAL', actor: 'node' });
  assert.equal(blocked.status, 'TASK_STATUS_BLOCKED');
  assert.deepEqual(blocked.spec.dependsOn.map((d) => [d.taskId, d.type]), [[pre.taskId, 'DEPENDENCY_TYPE_OPTIONAL']]);
  await assert.rejects(client.addDependency(pre.taskId, task.taskId), /cycle/);
  const ready = await client.removeDependency(task.taskId, pre.taskId);
  assert.equal(ready.status, 'TASK_STATUS_READY');
  const { tasks } = await client.listTasks({ label: 'team=node' });
  assert.deepEqual(tasks.map((t) => t.taskId), [task.taskId]);
});
