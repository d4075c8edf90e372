// A2A turns: a message sent to the broker's A2A gateway becomes a task whose payload (content type
// TURN_TYPE) is the A2A message as JSON with the conversation before it; the agent ends the turn
// by completing the task with a result of content type RESULT_TYPE saying how the A2A task stands
// (done with artifacts, waiting for the caller's input or authentication, or rejected). An Agent's
// onTask returns one of the outcomes below; with the plain client, `outcome.encode()` gives the
// result and its content type. Formats: docs/a2a-turns.md (and tasks.proto).
//
//   onTask: async (ctx) => {
//     if (!ctx.turn.history.length) return a2aTurns.inputRequired('Which city?');
//     return a2aTurns.completed('', { artifacts: [a2aTurns.artifact(`Sunny in ${ctx.turnText}`)] });
//   }

import { randomUUID } from 'node:crypto';

import { decodePayload } from './values.js';

export const TURN_TYPE = 'application/vnd.a2a-broker.turn+json';
export const RESULT_TYPE = 'application/vnd.a2a-broker.result+json';
export const STATES = ['completed', 'input-required', 'auth-required', 'rejected'];

/** The turn a task carries ({message, history, contextId}), or null for a task not from A2A. */
export function turnOf(task) {
  const spec = task?.spec ?? {};
  return spec.contentType === TURN_TYPE ? decodePayload(spec.payload, spec.contentType) : null;
}

/** The text parts of an A2A message (as JSON), joined. */
export function textOf(message) {
  return (message?.parts ?? [])
    .filter((p) => typeof p.text === 'string')
    .map((p) => p.text)
    .join('\n');
}

/** An A2A message from the agent with one text part and a fresh message id. */
export function agentMessage(text) {
  return { messageId: randomUUID(), role: 'ROLE_AGENT', parts: [{ text }] };
}

/** An A2A artifact: a text part, a JSON `data` part, and/or the given `parts`. */
export function artifact(text, { name = 'result', data, parts = [], artifactId, description } = {}) {
  const all = [];
  if (text !== undefined && text !== null) all.push({ text });
  if (data !== undefined) all.push({ data });
  all.push(...parts);
  const art = { artifactId: artifactId || randomUUID(), name, parts: all };
  if (description) art.description = description;
  return art;
}

/** How an A2A turn ends: a state, the agent's message (optional) and artifacts. */
export class A2AOutcome {
  constructor(state, message = null, artifacts = []) {
    if (!STATES.includes(state)) throw new Error(`state must be one of ${STATES.join(', ')}, not ${JSON.stringify(state)}`);
    Object.assign(this, { state, message, artifacts });
  }

  /** [result bytes, RESULT_TYPE] for complete(). */
  encode() {
    const doc = { state: this.state };
    if (this.message) doc.message = this.message;
    if (this.artifacts.length || this.state === 'completed') doc.artifacts = this.artifacts;
    return [Buffer.from(JSON.stringify(doc), 'utf8'), RESULT_TYPE];
  }
}

const asMessage = (m) => (typeof m === 'string' ? agentMessage(m) : m ?? null);

/** Done: `text` (when given) becomes an artifact named `name`, after `artifacts`; `message` an optional reply. */
export function completed(text = '', { artifacts = [], name = 'result', message } = {}) {
  return new A2AOutcome('completed', asMessage(message), [...artifacts, ...(text ? [artifact(text, { name })] : [])]);
}

/**
 * Ask the caller (`question`: text or an A2A message) and wait without holding a slot: the answer
 * comes as a new turn (a child task) with the conversation so far in its history.
 */
export function inputRequired(question, { artifacts = [] } = {}) {
  return new A2AOutcome('input-required', asMessage(question), artifacts);
}

/** The caller must authenticate (`text` says how) before the task can go on. */
export function authRequired(text, { artifacts = [] } = {}) {
  return new A2AOutcome('auth-required', asMessage(text), artifacts);
}

/** The agent will not do this task (a final state), saying why. */
export function rejected(reason) {
  return new A2AOutcome('rejected', asMessage(reason));
}
