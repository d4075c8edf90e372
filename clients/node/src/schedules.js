// Schedules: a task submitted at each firing of a cron expression (in a time zone) or a fixed
// interval. The BrokerClient methods (installed on its prototype by index.js) and the spec
// conversion: plain numbers of seconds and Dates are accepted where the protos want a Duration
// or a Timestamp.

import { duration, encodePayload, timestamp } from './values.js';

const DURATIONS = ['interval', 'jitter', 'misfireGrace'];
const TIMES = ['startTime', 'endTime'];

/**
 * A ScheduleSpec as the broker takes it: `{task: TaskSpec, cron, timeZone, interval, startTime,
 * endTime, jitter, missed, maxCatchup, misfireGrace, overlap, createdBy}`; `interval`, `jitter`
 * and `misfireGrace` in seconds (or Durations), `startTime`/`endTime` Dates (or Timestamps).
 */
export function scheduleSpec(spec) {
  const out = { ...spec, task: taskSpec(spec.task ?? {}) };
  for (const k of DURATIONS) if (typeof out[k] === 'number') out[k] = duration(out[k]);
  for (const k of TIMES) if (out[k] instanceof Date) out[k] = timestamp(out[k]);
  return out;
}

/** A TaskSpec with its payload encoded (see encodePayload) and a Date `notBefore` as a Timestamp. */
export function taskSpec(spec) {
  const [bytes, contentType] = encodePayload(spec.payload, spec.contentType);
  const out = { ...spec, payload: bytes, contentType };
  if (out.notBefore instanceof Date) out.notBefore = timestamp(out.notBefore);
  return out;
}

export const SCHEDULE_SAFE = ['GetSchedule', 'ListSchedules', 'PauseSchedule', 'ResumeSchedule'];

export const scheduleMethods = {
  /**
   * Store a schedule: `{scheduleId?, spec, paused}` (see scheduleSpec). Each firing submits its task
   * once, labelled `a2a.schedule=<id>`; see the README's Scheduled and recurring tasks.
   */
  createSchedule({ scheduleId = '', spec, paused = false }) {
    return this._unary(this.tasks, 'CreateSchedule', { scheduleId, spec: scheduleSpec(spec), paused });
  },

  getSchedule(scheduleId) {
    return this._unary(this.tasks, 'GetSchedule', { scheduleId });
  },

  /** One page of schedules by id: `{status: 'SCHEDULE_STATUS_PAUSED' | ..., pageSize, pageToken}`. */
  listSchedules(filter = {}) {
    return this._unary(this.tasks, 'ListSchedules', filter);
  },

  /** No firing until resumeSchedule (firings due meanwhile are not made up). */
  pauseSchedule(scheduleId, { note = '' } = {}) {
    return this._unary(this.tasks, 'PauseSchedule', { scheduleId, note });
  },

  /** Fire again, from the first firing after now. */
  resumeSchedule(scheduleId) {
    return this._unary(this.tasks, 'ResumeSchedule', { scheduleId });
  },

  /** Remove the schedule (the tasks it submitted stay). */
  deleteSchedule(scheduleId) {
    return this._unary(this.tasks, 'DeleteSchedule', { scheduleId });
  },

  /**
   * Run it now (even paused): `{task, skipped, schedule}` (`task` null when the overlap policy,
   * the schedule's or `overlap` here, skipped the run).
   */
  triggerSchedule(scheduleId, { overlap = 'OVERLAP_POLICY_UNSPECIFIED' } = {}) {
    return this._unary(this.tasks, 'TriggerSchedule', { scheduleId, overlap });
  },
};
