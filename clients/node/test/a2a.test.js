// A2A turns from Node: an Agent reads the turn a task carries (ctx.turn, ctx.turnText) and ends it
// with an outcome (input-required, completed with artifacts, auth-required, rejected), completed
// with the A2A result content type, against a real broker started by this test. (The same agent
// driven by an a2a-sdk client through the broker's A2A gateway: tests/e2e/test_node_a2a_agent.py.)

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { Agent, BrokerClient, a2aTurns, decodePayload } from '../src/index.js';
import { startBroker } from '../testing/broker.js';

let broker;
let client;
let agent;
const seen = [];

before(async () => {
  broker = await startBroker();
  client = new BrokerClient(broker.address, { timeoutMs: 10000 });
  agent = new Agent({
    client,
    agentId: 'n-weather',
    capabilities: ['n-weather'],
    onTask: async (ctx) => {
      seen.push({ turn: ctx.turn, text: ctx.turnText });
      if (!ctx.turn) return 'not an A2A task';
      if (ctx.turnText === 'reject me') return a2aTurns.rejected('I only do weather');
      if (ctx.turnText === 'my calendar') return a2aTurns.authRequired('sign in to your calendar first');
      if (!ctx.turn.history.length) return a2aTurns.inputRequired('Which city?');
      const forecast = a2aTurns.artifact(`Sunny in ${ctx.turnText}`, { name: 'forecast', data: { celsius: 21 } });
      return a2aTurns.completed('', { artifacts: [forecast], message: 'Here is your forecast' });
    },
  });
  await agent.start();
});

after(async () => {
  await agent?.stop({ drainMs: 1000 });
  client?.close();
  await broker?.stop();
});

function turn(text, history = []) {
  const message = (t, role = 'ROLE_USER') => ({ messageId: `m-${t}`, role, parts: [{ text: t }] });
  return { message: message(text), history: history.map(([t, role]) => message(t, role)), contextId: 'ctx-1' };
}

/** Submit a task (an A2A turn unless `contentType` says otherwise); resolves to it once finished. */
async function run(payload, contentType = a2aTurns.TURN_TYPE) {
  const { task } = await client.submit({ title: 'weather', payload, contentType, requiredCapabilities: ['n-weather'] });
  const watch = client.watchTasks({ taskId: task.taskId, includeSnapshot: true });
  for await (const ev of watch) {
    if (ev.task?.status === 'TASK_STATUS_COMPLETED' || ev.task?.status === 'TASK_STATUS_FAILED') break;
  }
  return client.getTask(task.taskId);
}

function resultOf(task) {
  assert.equal(task.status, 'TASK_STATUS_COMPLETED', task.lastError);
  assert.equal(task.resultContentType, a2aTurns.RESULT_TYPE);
  return decodePayload(task.result, task.resultContentType);
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

test('an Agent asks for input, then completes the answer with an artifact', { timeout: 30000 }, async () => {
  const asked = resultOf(await run(turn('weather please')));
  assert.equal(asked.state, 'input-required');
  assert.equal(a2aTurns.textOf(asked.message), 'Which city?');
  assert.equal(asked.message.role, 'ROLE_AGENT');
  assert.match(asked.message.messageId, UUID);
  assert.equal(seen.at(-1).text, 'weather please');
  assert.equal(seen.at(-1).turn.contextId, 'ctx-1');

  const done = resultOf(await run(turn('Paris', [['weather please'], ['Which city?', 'ROLE_AGENT']])));
  assert.equal(done.state, 'completed');
  assert.equal(a2aTurns.textOf(done.message), 'Here is your forecast');
  assert.deepEqual(done.artifacts.map((a) => [a.name, a.parts]), [['forecast', [{ text: 'Sunny in Paris' }, { data: { celsius: 21 } }]]]);
  assert.match(done.artifacts[0].artifactId, UUID);
});

test('an Agent declares rejected and auth-required with its reason', { timeout: 30000 }, async () => {
  const no = resultOf(await run(turn('reject me')));
  assert.deepEqual([no.state, a2aTurns.textOf(no.message)], ['rejected', 'I only do weather']);
  const auth = resultOf(await run(turn('my calendar')));
  assert.deepEqual([auth.state, a2aTurns.textOf(auth.message)], ['auth-required', 'sign in to your calendar first']);
});

test('a task not from A2A has no turn and completes as before', { timeout: 30000 }, async () => {
  const task = await run({ text: 'plain' }, 'application/json');
  assert.equal(seen.at(-1).turn, null);
  assert.equal(task.resultContentType, 'text/plain; charset=utf-8');
  assert.equal(decodePayload(task.result, task.resultContentType), 'not an A2A task');
});

test('outcomes encode as the result type; an unknown state is refused', () => {
  const [bytes, type] = a2aTurns.inputRequired('Which day?').encode();
  assert.equal(type, a2aTurns.RESULT_TYPE);
  const doc = JSON.parse(bytes.toString());
  assert.deepEqual(Object.keys(doc), ['state', 'message']);
  assert.notEqual(a2aTurns.agentMessage('a').messageId, a2aTurns.agentMessage('a').messageId);
  const done = JSON.parse(a2aTurns.completed('text').encode()[0].toString());
  assert.deepEqual(done.artifacts.map((a) => [a.name, a.parts]), [['result', [{ text: 'text' }]]]);
  assert.throws(() => new a2aTurns.A2AOutcome('done'), /state must be one of/);
});
