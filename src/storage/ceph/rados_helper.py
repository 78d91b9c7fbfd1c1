"""zimage's RADOS helper.

A small long-lived Python 3 program run with Debian's python3-rados/python3-rbd (Ceph's own librados/librbd
bindings, dependencies of ceph-common). One per storage; zimage (src/storage/ceph/helper.ts) talks to it over
stdin/stdout. It holds one cluster connection, so metadata calls and bounded reads cost a round trip to the
cluster (about 0.3 ms), not a process start and a new cluster handshake (about 30 ms per `rbd` run).

Protocol: the first stdin line is the settings (JSON, includes the cephx key: it never appears on a command
line). Then one JSON request per line: {"id", "op", ...}; a request with "n" > 0
(a write) is followed by n raw bytes. Each answer is one JSON line
{"id", "ok": true, "r": result, "n": payloadBytes} followed by n raw bytes, or
{"id", "ok": false, "errno": n, "error": "text", "n": 0}. Requests are answered in order. EOF on stdin ends it.

Linted with pyflakes3; unit-tested against fake rados/rbd modules (test/ceph-helper/).
"""
import errno as E
import json
import os
import sys


class CephError(Exception):
    def __init__(self, n, message):
        super().__init__(message)
        self.errno = n


def err_of(e):
    """(positive errno, text) of any exception; librados/librbd errors carry their errno."""
    n = getattr(e, 'errno', None)
    if not isinstance(n, int):
        n = E.EIO
    return abs(n), (str(e) or type(e).__name__)


def optional(fn):
    """fn()'s result, or its error as {'errno', 'error'} (a restricted key may not read everything)."""
    try:
        return fn()
    except Exception as e:
        n, m = err_of(e)
        return {'errno': n, 'error': m}


class Channel:
    """Answers on a binary stream: a JSON header line, then the payload bytes."""

    def __init__(self, out):
        self.out = out

    def send(self, obj, data=b''):
        obj['n'] = len(data)
        self.out.write(json.dumps(obj, separators=(',', ':')).encode() + b'\n')
        if data:
            self.out.write(data)
        self.out.flush()


class Helper:
    """The operations, over one connected cluster and one pool."""

    def __init__(self, rados, rbd, cluster, pool, timeout):
        self.rados = rados
        self.rbd = rbd
        self.cluster = cluster
        self.pool = pool
        self.timeout = timeout
        self.ioctxs = {}
        self.handles = {}
        self.next_handle = 1
        self.bytes_read = 0
        self.ops = {
            'status': self.op_status, 'open': self.op_open, 'read': self.op_read, 'close': self.op_close,
            'stat': self.op_stat, 'usage': self.op_usage, 'remove': self.op_remove, 'rename': self.op_rename,
            'list': self.op_list, 'exists': self.op_exists, 'counters': self.op_counters, 'watched': self.op_watched,
            'openw': self.op_openw, 'write': self.op_write,
        }

    def ioctx(self, full_try=False):
        k = bool(full_try)
        if k not in self.ioctxs:
            io = self.cluster.open_ioctx(self.pool)
            if full_try:
                io.set_osdmap_full_try()
            self.ioctxs[k] = io
        return self.ioctxs[k]

    def mon(self, prefix, **kw):
        kw['prefix'] = prefix
        kw['format'] = 'json'
        rc, buf, status = self.cluster.mon_command(json.dumps(kw), b'', timeout=self.timeout)
        if rc != 0:
            raise CephError(abs(rc), '%s: %s' % (prefix, status or os.strerror(abs(rc))))
        return json.loads(buf) if buf else None

    def op_status(self, req):
        pool = self.pool
        r = {'fsid': self.cluster.get_fsid(), 'exists': self.cluster.pool_exists(pool)}
        r['quorum'] = optional(lambda: self.mon('quorum_status'))
        if not r['exists']:
            return r
        r['df'] = optional(lambda: self.mon('df'))
        r['size'] = optional(lambda: self.mon('osd pool get', pool=pool, var='size'))
        r['quota'] = optional(lambda: self.mon('osd pool get-quota', pool=pool))
        r['stats'] = optional(lambda: self.ioctx().get_stats())
        r['clusterStats'] = optional(lambda: self.cluster.get_cluster_stats())
        if req.get('probe'):
            # A write and a delete of a tiny object: proves the key may write to the pool. FULL_TRY makes a
            # full pool answer EDQUOT/ENOSPC at once instead of blocking the write.
            name = '.zimage-probe.%d.%s' % (os.getpid(), os.urandom(4).hex())

            def probe():
                io = self.ioctx(True)
                io.write_full(name, b'')
                io.remove_object(name)
                return {'ok': True}
            r['probe'] = optional(probe)
        return r

    def op_open(self, req):
        img = self.rbd.Image(self.ioctx(), req['image'], read_only=True)
        h = self.next_handle
        self.next_handle += 1
        self.handles[h] = img
        return {'handle': h, 'size': img.size()}

    def op_openw(self, req):
        """Opens an image for writing (a resumed import): its handle and size, cut to `cut` bytes when given.
        Shorter than `cut`: only its size (no handle)."""
        img = self.rbd.Image(self.ioctx(), req['image'])
        cut = req.get('cut')
        if cut is not None and img.size() < cut:
            size = img.size()
            img.close()
            return {'size': size}
        if cut is not None and img.size() > cut:
            try:
                img.resize(cut)
            except Exception:
                img.close()
                raise
        h = self.next_handle
        self.next_handle += 1
        self.handles[h] = img
        return {'handle': h, 'size': img.size()}

    def op_write(self, req):
        """Writes the request's payload at offset, growing the image first when it ends past it."""
        img = self.handle(req)
        data = req.get('data', b'')
        end = req['offset'] + len(data)
        if end > img.size():
            img.resize(end)
        if data:
            n = img.write(data, req['offset'])
            if n != len(data):
                raise CephError(E.EIO, 'wrote %d of %d bytes' % (n, len(data)))
        return {'size': img.size()}

    def handle(self, req):
        img = self.handles.get(req.get('handle'))
        if img is None:
            raise CephError(E.EBADF, 'no open image with handle %r' % req.get('handle'))
        return img

    def op_read(self, req):
        data = self.handle(req).read(req['offset'], req['length'])
        self.bytes_read += len(data)
        return {'length': len(data)}, data

    def op_close(self, req):
        img = self.handles.pop(req['handle'], None)
        if img is not None:
            img.close()
        return {}

    def op_stat(self, req):
        with self.rbd.Image(self.ioctx(), req['image'], read_only=True) as img:
            s = img.stat()
            return {'size': s['size'], 'objectSize': s['obj_size'], 'objects': s['num_objs'],
                    'blockNamePrefix': s['block_name_prefix'], 'id': img.id(), 'features': img.features()}

    def op_usage(self, req):
        # RBD's own accounting, as `rbd du` reports used_size: diff_iterate over the whole image with
        # whole_object=True reads the object map (fast-diff) and lists every data object that exists, each
        # counted whole (object size, the last one clipped at the image end). Objects never written (zero
        # runs skipped by a sparse import) count 0. An image already open (SyncImageSize measures while its
        # header source is open) is reused: opening an image costs several round trips.
        img = None
        for h in self.handles.values():
            if h.get_name() == req['image']:
                img = h
                break
        own = img is None
        if own:
            img = self.rbd.Image(self.ioctx(), req['image'], read_only=True)
        try:
            total = [0, 0]

            def cb(offset, length, exists):
                if exists:
                    total[0] += length
                    total[1] += 1
                return 0
            img.diff_iterate(0, img.size(), None, cb, include_parent=True, whole_object=req.get('wholeObject', True))
            return {'bytes': total[0], 'extents': total[1], 'size': img.size()}
        finally:
            if own:
                img.close()

    def evict_watchers(self, name):
        """Blocklists the clients still watching `name`. A killed `rbd import` leaves its watch for ~30 s
        (osd_client_watch_timeout), which blocks removing the image; only for an image our own rbd wrote."""
        try:
            img = self.rbd.Image(self.ioctx(), name, read_only=True)
        except self.rbd.ImageNotFound:
            return 0
        try:
            addrs = [w['addr'] for w in img.watchers_list()]
        finally:
            img.close()
        for a in addrs:
            try:
                self.mon('osd blocklist', blocklistop='add', addr=a, expire=600.0)
            except CephError as e:
                if e.errno != E.EINVAL:
                    raise
                self.mon('osd blacklist', blacklistop='add', addr=a, expire=600.0)  # before Pacific
        return len(addrs)

    def op_remove(self, req):
        try:
            if req.get('evict'):
                self.evict_watchers(req['image'])
            self.rbd.RBD().remove(self.ioctx(True), req['image'])
            return {'removed': True}
        except self.rbd.ImageNotFound:
            return {'removed': False}

    def op_watched(self, req):
        """Whether a client (maybe a dead one, until its watch times out) has the image open: removing it then blocks."""
        try:
            me = self.cluster.get_instance_id()
            with self.rbd.Image(self.ioctx(), req['image'], read_only=True) as img:
                # Opening the image may watch it too: only other clients count.
                return {'watched': any(w.get('id') != me for w in img.watchers_list())}
        except self.rbd.ImageNotFound:
            return {'watched': False}

    def op_rename(self, req):
        self.rbd.RBD().rename(self.ioctx(True), req['src'], req['dst'])
        return {}

    def op_list(self, req):
        return {'images': self.rbd.RBD().list(self.ioctx())}

    def op_exists(self, req):
        try:
            with self.rbd.Image(self.ioctx(), req['image'], read_only=True) as img:
                return {'exists': True, 'size': img.size()}
        except self.rbd.ImageNotFound:
            return {'exists': False}

    def op_counters(self, req):
        return {'bytesRead': self.bytes_read, 'handles': len(self.handles)}

    def answer(self, line, ch, inp=None):
        """Runs one request line (reading its payload from inp) and sends its answer; never raises."""
        req = None
        try:
            req = json.loads(line)
            if not isinstance(req, dict):
                raise CephError(E.EINVAL, 'a request must be a JSON object')
            n = req.get('n', 0)
            if isinstance(n, int) and n > 0 and inp is not None:
                data = inp.read(n)
                if len(data) != n:
                    raise CephError(E.EIO, 'the request payload ended after %d of %d bytes' % (len(data), n))
                req['data'] = data
            fn = self.ops.get(req.get('op'))
            if fn is None:
                raise CephError(E.EINVAL, 'unknown op %r' % req.get('op'))
            res = fn(req)
            if isinstance(res, tuple):
                ch.send({'id': req['id'], 'ok': True, 'r': res[0]}, res[1])
            else:
                ch.send({'id': req['id'], 'ok': True, 'r': res})
        except Exception as e:
            n, m = err_of(e)
            rid = req.get('id') if isinstance(req, dict) else None
            ch.send({'id': rid, 'ok': False, 'errno': n, 'error': m})

    def serve(self, inp, ch):
        for line in iter(inp.readline, b''):
            self.answer(line, ch, inp)

    def shutdown(self):
        for img in list(self.handles.values()):
            try:
                img.close()
            except Exception:
                pass
        self.handles.clear()
        for io in self.ioctxs.values():
            io.close()
        self.ioctxs.clear()
        self.cluster.shutdown()


def main(inp, out):
    ch = Channel(out)
    try:
        import rados
        import rbd
    except Exception as e:
        ch.send({'id': 0, 'ok': False, 'errno': E.ENOPKG, 'error': 'cannot import the Ceph Python bindings (%s)' % e})
        return 3
    cfg = json.loads(inp.readline() or b'{}')
    timeout = int(cfg.get('timeout', 30))
    try:
        cluster = rados.Rados(conffile=cfg.get('confFile') or '/dev/null', rados_id=cfg.get('user') or 'admin',
                              conf=cfg.get('conf') or {})
        cluster.connect(timeout=timeout)
    except Exception as e:
        n, m = err_of(e)
        ch.send({'id': 0, 'ok': False, 'errno': n, 'error': m})
        return 4
    ch.send({'id': 0, 'ok': True, 'r': {'fsid': cluster.get_fsid()}})
    helper = Helper(rados, rbd, cluster, cfg['pool'], timeout)
    try:
        helper.serve(inp, ch)
    finally:
        helper.shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.stdin.buffer, sys.stdout.buffer))
