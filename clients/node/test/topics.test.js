// Topics from Node.js: subscriptions, sending to a subject, competing consumers, seek, against a
// real broker started by this test.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { BrokerClient } from '../src/index.js';
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

// The next n messages, leaving the stream open (breaking out of `for await` would end it).
async function take(stream, n) {
  const it = stream[Symbol.asyncIterator]();
  const out = [];
  while (out.length < n) out.push((await it.next()).value);
  return out;
}

test('fan-out to subscriptions, competing consumers, seek and delete', { timeout: 30000 }, async () => {
  for (const agentId of ['n-pub', 'n-c1', 'n-c2']) await client.register({ agentId, maxConcurrentTasks: 1 });
  const made = await client.createSubscription('n-all', 'n.>', { ackDeadlineSeconds: 20, maxAttempts: 3 });
  assert.deepEqual([made.name, made.filter, made.ackDeadline.seconds, made.maxAttempts], ['n-all', 'n.>', '20', 3]);
  await client.createSubscription('n-eu', 'n.eu.*', { ordering: true });
  await assert.rejects(client.createSubscription('n-bad', 'n..x'), /filter/);

  const sent = [];
  for (let i = 0; i < 4; i++) sent.push((await client.sendToSubject('n-pub', 'n.eu.created', { i }, { orderingKey: 'k' })).messageIds[0]);
  await client.send('n-pub', { subject: 'n.us.created' }, { i: 4 });
  assert.equal((await client.getSubscription('n-all')).backlog, '5');
  assert.equal((await client.getSubscription('n-eu')).backlog, '4');

  // Two consumers of n-all share its five messages.
  const c1 = client.consume('n-c1', { subscription: 'n-all', maxInFlight: 2 });
  const c2 = client.consume('n-c2', { subscription: 'n-all', maxInFlight: 3 });
  const [a, b] = await Promise.all([take(c1, 2), take(c2, 3)]);
  assert.equal(await c1.ack(a.map((m) => m.messageId)), 2);
  assert.equal(await c2.ack(b.map((m) => m.messageId)), 3);
  assert.deepEqual([...a, ...b].map((m) => JSON.parse(m.payload).i).sort(), [0, 1, 2, 3, 4]);
  c1.cancel();
  c2.cancel();

  // n-eu: in order, one at a time per key.
  const eu = client.subscribe('n-c1', { subscription: 'n-eu' });
  const got = [];
  for await (const m of eu) {
    assert.equal(m.subscription, 'n-eu');
    got.push(JSON.parse(m.payload).i);
    await client.ack('n-c1', m.messageId);
    if (got.length === 4) break;
  }
  eu.cancel();
  assert.deepEqual(got, [0, 1, 2, 3]);

  const first = await client.getMessage(sent[0]);
  assert.equal(first.subject, 'n.eu.created');
  const back = await client.seek('n-eu', { sequence: first.sequence });
  assert.deepEqual([back.replayed, back.skipped], ['4', '0']);
  const { subscriptions } = await client.listSubscriptions();
  assert.deepEqual(subscriptions.map((s) => s.name), ['n-all', 'n-eu']);
  await client.deleteSubscription('n-eu');
  await assert.rejects(client.getSubscription('n-eu'), /NOT_FOUND/);
});
