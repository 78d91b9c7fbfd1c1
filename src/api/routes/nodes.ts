import { Type } from '@sinclair/typebox';
import { defineApi, type ApiDef } from '../registry.js';

/** zimage extension: the nodes sharing this database (several zimage processes on one PostgreSQL). */
export const nodeApis: ApiDef[] = [
  defineApi({
    name: 'GetZImageNodes',
    msgClass: 'org.zstack.zimage.APIGetZImageNodesMsg',
    method: 'GET',
    path: '/zimage/nodes',
    mode: 'sync',
    summary:
      'zimage extension: the zimage nodes sharing this database, each with its state (Alive while it heartbeats within the lease, ZIMAGE_NODE_LEASE_SECONDS), last heartbeat, the unfinished jobs it holds, and whether it runs the periodic work.',
    params: Type.Object({}),
    async handler(ctx) {
      const nodes = await ctx.services.nodes.list();
      return {
        inventories: nodes.map((n) => ({
          id: n.id,
          address: n.address,
          version: n.version,
          state: n.state,
          self: n.self,
          periodicWork: n.periodicWork,
          started: new Date(n.started).toISOString(),
          lastHeartbeat: new Date(n.lastHeartbeat).toISOString(),
          runningJobs: n.runningJobs,
        })),
      };
    },
  }),
];
