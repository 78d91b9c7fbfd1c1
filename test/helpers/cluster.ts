/**
 * Several `zimage serve` processes on one real PostgreSQL, for the cluster tests: each node in its own
 * process group, so a SIGKILL to the group takes its children (rbd, ssh) too, as a machine death would.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { rm } from 'node:fs/promises';
import pg from 'pg';
import { startProcess, tempDir, ZClient, type TestServer } from './zimage.js';

export type ClusterNode = TestServer & { proc: ChildProcess; output: () => string; /** the node's own TMPDIR */ tmp: string };

export class TestCluster {
  readonly nodes: ClusterNode[] = [];
  /** The admin session every client of this cluster uses (set by `login`). */
  session = '';
  private readonly db: pg.Client;

  private constructor(
    readonly dbUrl: string,
    private readonly env: NodeJS.ProcessEnv,
  ) {
    this.db = new pg.Client({ connectionString: dbUrl });
  }

  /** `count` nodes on `dbUrl`, started one after another: the first migrates the database and creates the admin. */
  static async start(dbUrl: string, count: number, env: NodeJS.ProcessEnv): Promise<TestCluster> {
    const cluster = new TestCluster(dbUrl, env);
    await cluster.db.connect();
    for (let i = 0; i < count; i++) await cluster.startNode();
    cluster.session = await new ZClient(cluster.nodes[0]!.url).login();
    return cluster;
  }

  async startNode(): Promise<ClusterNode> {
    // A TMPDIR of its own: what a killed node leaves in its temporary directory can be looked at.
    const tmp = await tempDir('zimage-node-tmp-');
    const node = { ...(await startProcess(['--db', this.dbUrl], { ...this.env, TMPDIR: tmp }, { detached: true })), tmp };
    this.nodes.push(node);
    return node;
  }

  alive(): ClusterNode[] {
    return this.nodes.filter((n) => n.proc.exitCode === null && n.proc.signalCode === null);
  }

  client(n: ClusterNode): ZClient {
    const c = new ZClient(n.url);
    c.session = this.session;
    return c;
  }

  /** SIGKILL to the node's whole process group; answers once the node has exited. */
  async kill(n: ClusterNode): Promise<void> {
    const exited = new Promise((r) => n.proc.once('exit', r));
    process.kill(-n.proc.pid!, 'SIGKILL');
    await exited;
  }

  query(sql: string, params: unknown[] = []): Promise<pg.QueryResult> {
    return this.db.query(sql, params);
  }

  async jobRow(uuid: string): Promise<Record<string, any>> {
    return (await this.db.query('SELECT * FROM api_job WHERE uuid = $1', [uuid])).rows[0];
  }

  /** Starts an async call on `n` and answers its job uuid (the call answers 202 at once with sync wait 0). */
  async startJob(n: ClusterNode, method: string, path: string, body: unknown, headers: Record<string, string> = {}): Promise<string> {
    const res = await this.client(n).raw(method, path, body, headers);
    assert.equal(res.status, 202, res.text);
    return String(res.body.location).split('/').pop()!;
  }

  /**
   * The process of the node running `job` now and another live node to watch it through. Heavy jobs wait in
   * the cluster-wide queue, so the node that answered the call is not always the one running it: killing the
   * wrong one would leave the job running and prove nothing.
   */
  async runnerOf(job: string): Promise<{ id: string; victim: ClusterNode; watcher: ClusterNode }> {
    const id = String((await this.jobRow(job)).owner_node);
    const address = (await this.db.query('SELECT address FROM node WHERE id = $1', [id])).rows[0]?.address;
    const victim = this.alive().find((n) => n.url === address);
    assert.ok(victim, `the process of node ${id} (${address}) running job ${job}`);
    return { id, victim, watcher: this.alive().find((n) => n !== victim)! };
  }

  /** Kills every node left, removes their data directories and closes the database connection. */
  async stop(): Promise<void> {
    for (const n of this.nodes) {
      if (n.proc.exitCode === null && n.proc.signalCode === null) process.kill(-n.proc.pid!, 'SIGKILL');
      await rm(n.dataDir, { recursive: true, force: true });
      await rm(n.tmp, { recursive: true, force: true });
    }
    await this.db.end();
  }
}
