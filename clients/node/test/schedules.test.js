// Schedules and notBefore from Node.js, against a real broker started by this test (the real
// clock, a test-sized interval): a schedule fires and submits its task, pause/trigger/resume/
// delete, refusals naming the field with nothing stored, a task held pending until its time.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { BrokerClient, grpc, toDate, toSeconds } from '../src/index.js';
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

async function tasksOf(scheduleId, atLeast, ms = 15000) {
  const until = Date.now() + ms;
  for (;;) {
    const { tasks } = await client.listTasks({ label: `a2a.schedule=${scheduleId}` });
    if (tasks.length >= atLeast) return tasks;
    if (Date.now() > until) throw new Error(`${scheduleId}: ${tasks.length} task(s) after ${ms} ms, wanted ${atLeast}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('a schedule fires on time, then is paused, triggered, resumed and deleted', { timeout: 40000 }, async () => {
  const created = await client.createSchedule({
    scheduleId: 'node-tick',
    spec: { interval: 1, task: { title: 'tick', payload: { n: 1 }, labels: { from: 'node' } }, overlap: 'OVERLAP_POLICY_ALLOW' },
  });
  assert.equal(created.status, 'SCHEDULE_STATUS_ACTIVE');
  assert.equal(toSeconds(created.spec.interval), 1);
  const [first] = await tasksOf('node-tick', 1);
  assert.equal(first.spec.title, 'tick');
  assert.equal(first.spec.labels.from, 'node');
  assert.deepEqual(JSON.parse(first.spec.payload.toString()), { n: 1 });
  const fireTime = first.spec.metadata.fields['a2a.fire_time'].stringValue;
  assert.ok(Math.abs(new Date(fireTime) - toDate(created.nextFireTime)) < 1, `${fireTime} is the first firing`);

  const paused = await client.pauseSchedule('node-tick', { note: 'enough' });
  assert.deepEqual([paused.status, paused.note], ['SCHEDULE_STATUS_PAUSED', 'enough']);
  const fired = Number(paused.firedCount);
  const run = await client.triggerSchedule('node-tick');
  assert.equal(run.task.status, 'TASK_STATUS_READY');
  assert.equal(run.schedule.firedCount, String(fired + 1));
  const skipped = await client.triggerSchedule('node-tick', { overlap: 'OVERLAP_POLICY_SKIP' });
  assert.equal(skipped.task, null);
  assert.ok(skipped.skipped);
  assert.equal((await client.resumeSchedule('node-tick')).status, 'SCHEDULE_STATUS_ACTIVE');
  const listed = await client.listSchedules({ status: 'SCHEDULE_STATUS_ACTIVE' });
  assert.deepEqual(listed.schedules.map((s) => s.scheduleId), ['node-tick']);
  await client.deleteSchedule('node-tick');
  await assert.rejects(client.getSchedule('node-tick'), (err) => err.code === grpc.status.NOT_FOUND);
});

test('a cron schedule in a time zone, dates and durations as JS values', async () => {
  const start = new Date(Date.now() + 3600_000);
  const s = await client.createSchedule({
    scheduleId: 'node-standup',
    paused: true,
    spec: {
      cron: '0 9 * * MON-FRI', timeZone: 'Europe/Paris', startTime: start, jitter: 30, misfireGrace: 120,
      missed: 'MISSED_FIRING_POLICY_RUN_ALL', maxCatchup: 3, task: { title: 'standup' },
    },
  });
  assert.deepEqual([s.spec.cron, s.spec.timeZone, s.status], ['0 9 * * MON-FRI', 'Europe/Paris', 'SCHEDULE_STATUS_PAUSED']);
  assert.deepEqual([toSeconds(s.spec.jitter), toSeconds(s.spec.misfireGrace), s.spec.maxCatchup], [30, 120, 3]);
  assert.equal(s.spec.missed, 'MISSED_FIRING_POLICY_RUN_ALL');
  assert.equal(toDate(s.spec.startTime).getTime(), start.getTime());
  assert.ok(toDate(s.nextFireTime) >= start);
  await client.deleteSchedule('node-standup');
});

test('bad schedules are refused naming the field, and nothing is stored', async () => {
  for (const [spec, field] of [
    [{ cron: '61 * * * *' }, 'cron'],
    [{ cron: '* * * * *', timeZone: 'Mars/Base' }, 'time_zone'],
    [{ interval: 0 }, 'interval'],
    [{ interval: 5, startTime: new Date(Date.now() + 7200_000), endTime: new Date(Date.now() + 3600_000) }, 'end_time'],
  ]) {
    await assert.rejects(
      client.createSchedule({ scheduleId: 'bad', spec: { ...spec, task: { title: 'x' } } }),
      (err) => err.code === grpc.status.INVALID_ARGUMENT && err.details.includes(field),
      JSON.stringify(spec),
    );
  }
  await assert.rejects(client.getSchedule('bad'), (err) => err.code === grpc.status.NOT_FOUND);
});

test('a task submitted with notBefore is pending until then', async () => {
  const at = new Date(Date.now() + 3600_000);
  const { task } = await client.submit({ title: 'later', notBefore: at });
  assert.equal(task.status, 'TASK_STATUS_PENDING');
  assert.equal(toDate(task.spec.notBefore).getTime(), at.getTime());
});
