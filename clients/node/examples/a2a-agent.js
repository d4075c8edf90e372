// An example Node.js agent serving A2A callers through the broker's A2A gateway: registers as
// "node-weather" with the capability (the A2A skill) "weather", asks the caller which city
// (input-required: it holds no slot while the caller thinks), and answers the next turn with a
// "forecast" artifact. Stops cleanly on Ctrl-C / SIGTERM.
//
//   A2A_BROKER_ADDRESS=127.0.0.1:50051 node examples/a2a-agent.js
//
// Then send it an A2A message naming the skill "weather" (see docs/a2a-turns.md).

import { Agent, BrokerClient, a2aTurns } from '../src/index.js';

const client = new BrokerClient(); // $A2A_BROKER_ADDRESS or 127.0.0.1:50051
const agent = new Agent({
  client,
  agentId: process.env.AGENT_ID ?? 'node-weather',
  capabilities: ['weather'],
  capacity: 4,
  log: (line) => console.error(`[agent] ${line}`),
  onTask: async (ctx) => {
    if (!ctx.turn) return a2aTurns.rejected('send me an A2A message');
    console.log(`turn ${ctx.taskId}: ${JSON.stringify(ctx.turnText)}`);
    if (!ctx.turn.history.length) return a2aTurns.inputRequired('Which city?');
    const city = ctx.turnText;
    return a2aTurns.completed('', { artifacts: [a2aTurns.artifact(`Sunny in ${city}`, { name: 'forecast' })] });
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
