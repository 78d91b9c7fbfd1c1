/**
 * The RADOS helper: a small long-lived Python 3 program run with Debian's `python3-rados`/`python3-rbd`
 * (Ceph's own librados/librbd bindings, dependencies of `ceph-common`). One per storage; zimage talks to
 * it over stdin/stdout. It holds one cluster connection, so metadata calls and bounded reads cost a round
 * trip to the cluster (≈0.3 ms), not a process start and a new cluster handshake (≈30 ms per `rbd` run).
 *
 * Protocol: the first stdin line is the settings (JSON, includes the cephx key: it never appears on a
 * command line). Then one JSON request per line: {"id", "op", ...}. Each answer is one JSON line
 * {"id", "ok": true, "r": result, "n": payloadBytes} followed by n raw bytes, or
 * {"id", "ok": false, "errno": n, "error": "text"}. Requests are answered in order. EOF on stdin ends it.
 *
 * It is passed to `python3 -c`, so the runtime needs no file next to the compiled JavaScript.
 */
export const HELPER_SOURCE = String.raw`
import sys, json, os, errno as E
out = sys.stdout.buffer
inp = sys.stdin.buffer

def send(obj, data=b''):
    obj['n'] = len(data)
    out.write(json.dumps(obj, separators=(',', ':')).encode() + b'\n')
    if data:
        out.write(data)
    out.flush()

class CephError(Exception):
    def __init__(self, n, message):
        super().__init__(message)
        self.errno = n

def err_of(e):
    n = getattr(e, 'errno', None)
    if not isinstance(n, int):
        n = E.EIO
    return abs(n), (str(e) or type(e).__name__)

try:
    import rados, rbd
except Exception as e:
    send({'id': 0, 'ok': False, 'errno': E.ENOPKG, 'error': 'cannot import the Ceph Python bindings (%s)' % e})
    sys.exit(3)

cfg = json.loads(inp.readline() or b'{}')
timeout = int(cfg.get('timeout', 30))
try:
    cluster = rados.Rados(conffile=cfg.get('confFile') or '/dev/null', rados_id=cfg.get('user') or 'admin', conf=cfg.get('conf') or {})
    cluster.connect(timeout=timeout)
except Exception as e:
    n, m = err_of(e)
    send({'id': 0, 'ok': False, 'errno': n, 'error': m})
    sys.exit(4)
send({'id': 0, 'ok': True, 'r': {'fsid': cluster.get_fsid()}})

pool = cfg['pool']
ioctxs = {}
def ioctx(full_try=False):
    k = bool(full_try)
    if k not in ioctxs:
        io = cluster.open_ioctx(pool)
        if full_try:
            io.set_osdmap_full_try()
        ioctxs[k] = io
    return ioctxs[k]

def mon(prefix, **kw):
    kw['prefix'] = prefix
    kw['format'] = 'json'
    rc, buf, status = cluster.mon_command(json.dumps(kw), b'', timeout=timeout)
    if rc != 0:
        raise CephError(abs(rc), '%s: %s' % (prefix, status or os.strerror(abs(rc))))
    return json.loads(buf) if buf else None

def optional(fn):
    try:
        return fn()
    except Exception as e:
        n, m = err_of(e)
        return {'errno': n, 'error': m}

handles = {}
next_handle = [1]
bytes_read = [0]

def op_status(req):
    r = {'fsid': cluster.get_fsid(), 'exists': cluster.pool_exists(pool)}
    r['quorum'] = optional(lambda: mon('quorum_status'))
    if not r['exists']:
        return r
    r['df'] = optional(lambda: mon('df'))
    r['size'] = optional(lambda: mon('osd pool get', pool=pool, var='size'))
    r['quota'] = optional(lambda: mon('osd pool get-quota', pool=pool))
    r['stats'] = optional(lambda: ioctx().get_stats())
    r['clusterStats'] = optional(lambda: cluster.get_cluster_stats())
    if req.get('probe'):
        # A write and a delete of a tiny object: proves the key may write to the pool. FULL_TRY makes a
        # full pool answer EDQUOT/ENOSPC at once instead of blocking the write.
        name = '.zimage-probe.%d.%s' % (os.getpid(), os.urandom(4).hex())
        def probe():
            io = ioctx(True)
            io.write_full(name, b'')
            io.remove_object(name)
            return {'ok': True}
        r['probe'] = optional(probe)
    return r

def op_open(req):
    img = rbd.Image(ioctx(), req['image'], read_only=True)
    h = next_handle[0]
    next_handle[0] += 1
    handles[h] = img
    return {'handle': h, 'size': img.size()}

def op_read(req):
    img = handles[req['handle']]
    data = img.read(req['offset'], req['length'])
    bytes_read[0] += len(data)
    return {'length': len(data)}, data

def op_close(req):
    img = handles.pop(req['handle'], None)
    if img is not None:
        img.close()
    return {}

def op_stat(req):
    with rbd.Image(ioctx(), req['image'], read_only=True) as img:
        s = img.stat()
        return {'size': s['size'], 'objectSize': s['obj_size'], 'objects': s['num_objs'], 'blockNamePrefix': s['block_name_prefix'], 'id': img.id(), 'features': img.features()}

def op_usage(req):
    # RBD's own accounting, as \`rbd du\` reports used_size: diff_iterate over the whole image with
    # whole_object=True reads the object map (fast-diff) and lists every data object that exists, each
    # counted whole (object size, the last one clipped at the image end). Objects never written (zero runs
    # skipped by a sparse import) count 0. An image already open (SyncImageSize measures while its header
    # source is open) is reused: opening an image costs several round trips.
    img = None
    for h in handles.values():
        if h.get_name() == req['image']:
            img = h
            break
    own = img is None
    if own:
        img = rbd.Image(ioctx(), req['image'], read_only=True)
    try:
        total = [0]
        objects = [0]
        def cb(offset, length, exists):
            if exists:
                total[0] += length
                objects[0] += 1
            return 0
        img.diff_iterate(0, img.size(), None, cb, include_parent=True, whole_object=req.get('wholeObject', True))
        return {'bytes': total[0], 'extents': objects[0], 'size': img.size()}
    finally:
        if own:
            img.close()

def op_remove(req):
    try:
        rbd.RBD().remove(ioctx(True), req['image'])
        return {'removed': True}
    except rbd.ImageNotFound:
        return {'removed': False}

def op_rename(req):
    rbd.RBD().rename(ioctx(True), req['src'], req['dst'])
    return {}

def op_list(req):
    return {'images': rbd.RBD().list(ioctx())}

def op_exists(req):
    try:
        with rbd.Image(ioctx(), req['image'], read_only=True) as img:
            return {'exists': True, 'size': img.size()}
    except rbd.ImageNotFound:
        return {'exists': False}

def op_counters(req):
    return {'bytesRead': bytes_read[0], 'handles': len(handles)}

OPS = {'status': op_status, 'open': op_open, 'read': op_read, 'close': op_close, 'stat': op_stat, 'usage': op_usage,
       'remove': op_remove, 'rename': op_rename, 'list': op_list, 'exists': op_exists, 'counters': op_counters}

for line in iter(inp.readline, b''):
    req = None
    try:
        req = json.loads(line)
        fn = OPS.get(req.get('op'))
        if fn is None:
            send({'id': req.get('id'), 'ok': False, 'errno': E.EINVAL, 'error': 'unknown op %r' % req.get('op')})
            continue
        res = fn(req)
        if isinstance(res, tuple):
            send({'id': req['id'], 'ok': True, 'r': res[0]}, res[1])
        else:
            send({'id': req['id'], 'ok': True, 'r': res})
    except Exception as e:
        n, m = err_of(e)
        send({'id': (req or {}).get('id'), 'ok': False, 'errno': n, 'error': m})

for img in list(handles.values()):
    try:
        img.close()
    except Exception:
        pass
for io in ioctxs.values():
    io.close()
cluster.shutdown()
`;
