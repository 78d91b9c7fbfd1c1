import type { Db } from '../db/connect.js';
import { UNFINISHED } from '../jobs/lease.js';
import type { NodeMembership } from './nodes.js';
import { uploadOutlivesNode } from './upload-state.js';

/**
 * Whether a Downloading image's add is dead work, i.e. no live node can still finish it, judged from its
 * AddImage job (the job records the image uuid):
 * - its job is unfinished: no; the job's lease decides (a dead node's job is taken over and redone, which
 *   removes the partial image first, or failed, after which this judges again);
 * - its job ended (an upload:// add answers at once, its bytes come later): dead when the node that
 *   answered it is dead, or is this node's earlier life (`startUp` with the same node id), unless any node
 *   can continue the upload (upload-state.ts: SFTP and Ceph storages; the idle sweep removes it when abandoned);
 * - no job row (purged after the retention period): dead only at a single-node start-up (SQLite).
 */
export function deadAddJudge(
  db: Db,
  nodes: NodeMembership,
  opts: { startUp: boolean; singleNode: boolean },
): (imageUuid: string) => Promise<boolean> {
  return async (imageUuid) => {
    if (opts.singleNode && opts.startUp) return true; // one process per database: nothing else can be adding
    const job = await db
      .selectFrom('api_job')
      .select(['state', 'owner_node'])
      .where('resource_uuid', '=', imageUuid)
      .where('api_name', '=', 'AddImage')
      .orderBy('create_date', 'desc')
      .executeTakeFirst();
    if (!job) return false;
    if ((UNFINISHED as readonly string[]).includes(job.state)) return false;
    if (await uploadOutlivesNode(db, imageUuid)) return false;
    if (job.owner_node === nodes.nodeId) return opts.startUp;
    return !(await nodes.alive(job.owner_node));
  };
}
