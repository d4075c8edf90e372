// An example Node.js agent: registers as "node-example" with the capability
// "uppercase", logs every message it receives, and completes "uppercase" tasks
// by upper-casing the payload's `text`. Stops cleanly on Ctrl-C / SIGTERM.
//
//   A2A_BROKER_ADDRESS=127.0.0.1:50051 node examples/agent.js
//
// Then, from another shell (Python CLI):
//   a2a-broker agents register me
//   a2a-broker send --from me --to node-example '{"hello": "node"}'
//   a2a-broker tasks submit shout --capability uppercase --payload '{"text": "hello"}'

import { Agent, BrokerClient } from '../src/index.js';

const client = new BrokerClient(); // $A2A_BROKER_ADDRESS or 127.0.0.1:50051
const agent = new Agent({
  client,
  agentId: process.env.AGENT_ID ?? 'node-example',
  capabilities: ['uppercase'],
  capacity: 4,
  log: (line) => console.error(`[agent] ${line}`),
  onMessage: async (msg) => {
    console.log(`message ${msg.messageId} from ${msg.senderId}:`, msg.data);
  },
  onTask: async (ctx) => {
    console.log(`task ${ctx.taskId} (attempt ${ctx.attempt}):`, ctx.data);
    await ctx.progress(50, 'upper-casing');
    return { text: String(ctx.data?.text ?? '').toUpperCase() };
  },
});

await agent.start();
console.log(`agent ${agent.agentId} ready at ${client.address}; Ctrl-C to stop`);

let stopping = false;
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, async () => {
    if (stopping) return;
    stopping = true;
    await agent.stop();
    client.close();
    console.log('stopped');
  });
}
