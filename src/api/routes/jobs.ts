import { Type } from '@sinclair/typebox';
import { ZStackError } from '../../lib/errors.js';
import { INVENTORY_CLASS, withClass } from '../../lib/inventory-class.js';
import { defineApi } from '../registry.js';

export const jobApis = [
  defineApi({
    name: 'GetTaskProgress',
    msgClass: 'org.zstack.header.core.progress.APIGetTaskProgressMsg',
    method: 'GET',
    path: '/task-progresses/{apiId}',
    mode: 'sync',
    summary: "Progress of a running job, as ZStack's task-progress records (content = percentage).",
    params: Type.Object({ apiId: Type.String(), all: Type.Optional(Type.Boolean()) }),
    async handler(ctx, p) {
      const job = await ctx.services.jobs.get(p.apiId);
      if (!job) return { inventories: [] };
      const percent = job.state === 'Succeeded' ? 100 : job.bytes_total > 0 ? Math.floor((job.bytes_done * 100) / job.bytes_total) : 0;
      return {
        inventories: [
          withClass(INVENTORY_CLASS.taskProgress, {
            taskUuid: job.uuid,
            taskName: job.api_name,
            type: 'Progress',
            content: String(percent),
            time: Date.now(),
            opaque: {
              state: job.state,
              bytesDone: job.bytes_done,
              bytesTotal: job.bytes_total,
              bytesPerSecond: job.throughput,
              // zimage cluster: the node holding the job (empty while it waits in the queue), and the one before it.
              node: job.owner_node,
              ...(job.previous_node ? { previousNode: job.previous_node } : {}),
            },
          }),
        ],
      };
    },
  }),
  defineApi({
    name: 'CancelLongJob',
    msgClass: 'org.zstack.header.longjob.APICancelLongJobMsg',
    method: 'PUT',
    path: '/longjobs/{uuid}/actions',
    actionKey: 'cancelLongJob',
    mode: 'async',
    summary:
      'Cancels a running or queued job (its uuid is the api job uuid); the job ends with SYS.1017. Cancelling a cancelled job succeeds; a succeeded or failed one is SYS.1007.',
    params: Type.Object({ uuid: Type.String() }),
    async handler(ctx, p) {
      const job = await ctx.services.jobs.get(p.uuid);
      if (!job) throw new ZStackError('SYS.1003', `invalid field[uuid], resource[uuid:${p.uuid}, type:LongJobVO] not found`);
      // LongJobApiInterceptor, then LongJobManagerImpl: a job cancelled before is cancelled again fine.
      if (job.state === 'Succeeded') throw new ZStackError('SYS.1007', 'cannot cancel longjob that is succeeded');
      if (job.state === 'Failed') throw new ZStackError('SYS.1007', 'cannot cancel longjob that is failed');
      if (job.state !== 'Canceled') await ctx.services.jobs.cancel(p.uuid);
      return {};
    },
  }),
];
