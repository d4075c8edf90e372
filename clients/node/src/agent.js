// Agent: a Node.js agent in a few lines (the counterpart of the Python Worker).
//
//   const agent = new Agent({
//     client, agentId: 'node-1', capabilities: ['translate'], capacity: 2,
//     onMessage: async (msg) => { ... },          // resolves: acked; throws: nacked (redelivered)
//     onTask: async (ctx) => ({ done: true }),     // resolves: completed with the value; throws: failed
//   });
//   // A task from the A2A gateway: ctx.turn ({message, history, contextId}) and ctx.turnText;
//   // onTask may resolve to an A2A outcome: a2aTurns.inputRequired('Which city?'), completed(...)...
//   await agent.start();  ...  await agent.stop();
//
// It registers, heartbeats, subscribes to its messages, listens for task
// assignments (the broker pushes no more than `capacity` at once), extends each
// task's lease while its handler runs, and aborts a handler (ctx.signal) when the
// broker cancels its task or the lease is lost.

import { A2AOutcome, textOf, turnOf } from './a2a-turns.js';
import { grpc } from './grpc.js';
import { decodePayload, toSeconds, toDate } from './values.js';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// The broker is away (down, restarting, or not answering in time): worth trying again.
const BROKER_AWAY = new Set([grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED]);
// Without a known lease expiry, how long a finished task's Complete/Fail is retried.
const DEFAULT_FINISH_WINDOW_MS = 60000;

export class Agent {
  constructor({
    client,
    agentId,
    capabilities = [],
    capacity = 1,
    onMessage,
    onTask,
    maxInFlight = 10,
    name = '',
    agentType = 'worker',
    deregisterOnStop = true,
    log = () => {},
  }) {
    if (!client || !agentId) throw new Error('client and agentId are required');
    Object.assign(this, { client, agentId, capabilities, capacity, onMessage, onTask, maxInFlight, name, agentType });
    this.deregisterOnStop = deregisterOnStop;
    this.log = log;
    this.running = new Map(); // taskId -> {attempt, abort: AbortController, reason}
    this.pending = new Set(); // promises of handlers in progress
    this.stats = { acked: 0, nacked: 0, completed: 0, failed: 0, cancelled: 0 };
    this.stopping = false;
    this.streams = [];
  }

  /** Register (waiting for the broker if it is not up yet, saying so once), then start the loops. */
  async start() {
    const reg = await this._register();
    const interval = toSeconds(reg.heartbeatInterval) ?? 10;
    this.heartbeat = setInterval(() => {
      this.client.heartbeat(this.agentId).catch((err) => this.log(`heartbeat failed: ${err.message}`));
    }, Math.max(50, (interval * 1000) / 2));
    if (this.onMessage) this.loops = [...(this.loops ?? []), this._loop('Subscribe', () => this._messages())];
    if (this.onTask) this.loops = [...(this.loops ?? []), this._loop('Listen', () => this._tasks())];
    return reg;
  }

  async _register() {
    let delay = 100;
    let said = false;
    for (;;) {
      try {
        const reg = await this.client.register({
          agentId: this.agentId,
          name: this.name,
          agentType: this.agentType,
          capabilities: this.capabilities,
          maxConcurrentTasks: this.capacity,
        });
        if (said) this.log(`the broker at ${this.client.address} is up`);
        return reg;
      } catch (err) {
        if (!BROKER_AWAY.has(err.code) || this.stopping) throw err;
        if (!said) this.log(`waiting for the broker at ${this.client.address} (${err.message})`);
        said = true;
        await this._pause(delay);
        delay = Math.min(delay * 2, 2000);
      }
    }
  }

  /** Back off for `ms`, meanwhile nudging the channel to reconnect. */
  async _pause(ms) {
    const started = Date.now();
    await this.client.waitReady(ms);
    await sleep(Math.max(0, ms - (Date.now() - started)));
  }

  /**
   * Complete or Fail a task, retrying while the broker is away until the lease would lapse
   * (the broker answers OK to a repeated Complete of an attempt that already committed).
   */
  async _finish(what, lease, call) {
    let delay = 100;
    let said = false;
    for (;;) {
      try {
        await call();
        return true;
      } catch (err) {
        const left = lease.expiresMs - Date.now();
        if (!BROKER_AWAY.has(err.code) || left <= 0) {
          this.log(`${what} refused: ${err.message}`);
          return false;
        }
        if (!said) this.log(`${what} not acknowledged (${err.codeName}); retrying for up to ${Math.round(left / 1000)} s`);
        said = true;
        await this._pause(Math.min(delay, left));
        delay = Math.min(delay * 2, 1000);
      }
    }
  }

  /** Take no new work, wait up to drainMs for running handlers, then deregister. */
  async stop({ drainMs = 10000 } = {}) {
    if (this.stopping) return;
    this.stopping = true;
    // One confirmed (empty) ack: the acks written without a confirmation are committed once it
    // is answered (answers come in order), before the stream closes.
    const ms = this.messageStream;
    if (ms?.inBand && ms.call) {
      let t;
      const barrier = ms.ack([]).catch(() => {});
      await Promise.race([barrier, new Promise((r) => (t = setTimeout(r, 5000)))]);
      clearTimeout(t);
    }
    for (const s of this.streams) s.cancel();
    const drained = Promise.allSettled([...this.pending]);
    let timer;
    await Promise.race([drained, new Promise((r) => (timer = setTimeout(r, drainMs)))]);
    clearTimeout(timer); // a pending timer would keep the process alive
    for (const r of this.running.values()) r.abort.abort(new Error('agent stopping'));
    await Promise.allSettled(this.loops ?? []);
    clearInterval(this.heartbeat);
    if (this.deregisterOnStop) {
      await this.client.deregister(this.agentId).catch((err) => this.log(`deregister failed: ${err.message}`));
    }
  }

  async _loop(name, body) {
    let delay = 100;
    while (!this.stopping) {
      try {
        await body();
        delay = 100;
      } catch (err) {
        if (this.stopping) return;
        if (err.code === grpc.status.UNIMPLEMENTED) {
          this.log(`broker does not offer ${name}: ${err.message}`);
          return;
        }
        this.log(`${name} stream broke: ${err.message}; reconnecting`);
      }
      if (!this.stopping) await sleep(delay);
      delay = Math.min(delay * 2, 3000);
    }
  }

  _track(promise) {
    this.pending.add(promise);
    promise.finally(() => this.pending.delete(promise));
  }

  async _messages() {
    // Acks and nacks ride on the same stream (Consume; Subscribe and unary calls on an older broker).
    const stream = this.client.consume(this.agentId, { maxInFlight: this.maxInFlight });
    this.messageStream = stream;
    this.streams.push(stream);
    for await (const msg of stream) {
      if (this.stopping) break;
      this._track(this._handleMessage(msg));
    }
  }

  async _handleMessage(msg) {
    msg.data = decodePayload(msg.payload, msg.contentType);
    try {
      await this.onMessage(msg);
    } catch (err) {
      this.stats.nacked++;
      const reason = String(err?.message ?? err).slice(0, 1000);
      await this._onStream(
        this.messageStream,
        (s) => s.nack(msg.messageId, { reason }),
        () => this.client.nack(this.agentId, msg.messageId, { reason }),
      ).catch((e) => this.log(`nack failed: ${e.message}`));
      return;
    }
    // No confirmation frame (committed before the broker counts it; stop() confirms the last).
    await this._onStream(
      this.messageStream,
      (s) => (s.ackLater(msg.messageId) ? undefined : s.ack(msg.messageId)),
      () => this.client.ack(this.agentId, msg.messageId),
    ).then(
      () => this.stats.acked++,
      (e) => this.log(`ack failed: ${e.message}`),
    );
  }

  /** On the stream while it is open; by the unary call once it ended (the outcome still counts). */
  async _onStream(stream, inBand, unary) {
    if (stream) {
      try {
        return await inBand(stream);
      } catch (err) {
        if (!BROKER_AWAY.has(err.code) && err.code !== grpc.status.CANCELLED) throw err;
      }
    }
    return unary();
  }

  async _tasks() {
    // Completions, failures and extensions ride on the same stream (Work; Listen and unary
    // calls on an older broker).
    const stream = this.client.work(this.agentId);
    this.workStream = stream;
    this.streams.push(stream);
    for await (const ev of stream) {
      for (const c of ev.cancellations) {
        const r = this.running.get(c.taskId);
        if (r && (!c.attempt || c.attempt === r.attempt)) {
          r.reason = 'cancelled';
          r.abort.abort(new Error(`cancelled by the broker: ${c.reason}`));
        }
      }
      if (this.stopping) break;
      for (const a of ev.assignments) this._track(this._runTask(a));
    }
  }

  async _runTask({ task, attempt, leaseExpiresAt }) {
    const taskId = task.taskId;
    const abort = new AbortController();
    const entry = { attempt, abort, reason: '' };
    this.running.set(taskId, entry);
    const spec = task.spec ?? {};
    const leaseS = toSeconds(spec.leaseTimeout) ?? Math.max(1, (toDate(leaseExpiresAt) - Date.now()) / 1000 || 60);
    // When the lease lapses, as last heard from the broker.
    const lease = { expiresMs: toDate(leaseExpiresAt)?.getTime() || Date.now() + (leaseS * 1000 || DEFAULT_FINISH_WINDOW_MS) };
    const extend = async (fields) => {
      const resp = await this._onStream(
        this.workStream,
        (s) => s.extendLease(taskId, attempt, fields),
        () => this.client.extendLease(taskId, this.agentId, attempt, fields),
      );
      const expires = toDate(resp?.leaseExpiresAt)?.getTime();
      if (expires) lease.expiresMs = expires;
      return resp;
    };
    const ctx = {
      task,
      taskId,
      attempt,
      signal: abort.signal,
      data: decodePayload(spec.payload, spec.contentType ?? ''),
      turn: turnOf(task), // the A2A turn, or null for a task not from the A2A gateway
      get turnText() {
        return this.turn ? textOf(this.turn.message) : '';
      },
      progress: (progress, statusNote = '') => extend({ progress, statusNote }),
    };
    const keeper = setInterval(() => {
      extend().catch((err) => {
        if (err.code === grpc.status.FAILED_PRECONDITION || err.code === grpc.status.NOT_FOUND) {
          entry.reason = 'lease lost';
          abort.abort(new Error('lease lost'));
        }
      });
    }, Math.max(100, (leaseS * 1000) / 3));
    try {
      const aborted = new Promise((_, reject) => {
        abort.signal.addEventListener('abort', () => reject(abort.signal.reason), { once: true });
      });
      aborted.catch(() => {});
      let result;
      try {
        result = await Promise.race([this.onTask(ctx), aborted]);
      } catch (err) {
        if (entry.reason) {
          if (entry.reason === 'cancelled') this.stats.cancelled++;
          return;
        }
        clearInterval(keeper);
        this.stats.failed++;
        const error = String(err?.message ?? err).slice(0, 1000) || 'error';
        const nonRetryable = Boolean(err?.nonRetryable);
        await this._finish(`fail of ${taskId}`, lease, () =>
          this._onStream(
            this.workStream,
            (s) => s.fail(taskId, attempt, error, { nonRetryable }),
            () => this.client.fail(taskId, this.agentId, attempt, error, { nonRetryable }),
          ),
        );
        return;
      }
      clearInterval(keeper);
      const [out, contentType] = result instanceof A2AOutcome ? result.encode() : [result ?? Buffer.alloc(0), ''];
      const ok = await this._finish(`complete of ${taskId}`, lease, () =>
        this._onStream(
          this.workStream,
          (s) => s.complete(taskId, attempt, out, contentType),
          () => this.client.complete(taskId, this.agentId, attempt, out, contentType),
        ),
      );
      if (ok) this.stats.completed++;
    } finally {
      clearInterval(keeper);
      if (this.running.get(taskId) === entry) this.running.delete(taskId);
    }
  }
}
