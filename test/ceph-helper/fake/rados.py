"""A fake of python3-rados for rados_helper.py's unit tests: a cluster in memory."""
import errno
import json
import os


class Error(Exception):
    def __init__(self, message, errno=None):
        super().__init__(message)
        self.errno = errno


class ObjectNotFound(Error):
    pass


# The state every Rados() sees; tests reset and arrange it.
STATE = {}


def reset(**kw):
    STATE.clear()
    STATE.update({'fsid': '00000000-0000-4000-8000-000000000001', 'pools': {'rbd': {}}, 'connect_error': None,
                  'mon': {}, 'stats': {'num_bytes': 0}, 'cluster_stats': {'kb': 4096, 'kb_avail': 2048},
                  'write_error': None, 'objects': {}, 'shutdown': 0, 'closed_ioctxs': 0, 'full_try': 0})
    STATE.update(kw)


reset()


class Ioctx:
    def __init__(self, pool):
        self.pool = pool
        self.full_try = False

    def set_osdmap_full_try(self):
        self.full_try = True
        STATE['full_try'] += 1

    def get_stats(self):
        return STATE['stats']

    def write_full(self, name, data):
        if STATE['write_error']:
            raise Error('write refused', STATE['write_error'])
        STATE['objects'][name] = data

    def remove_object(self, name):
        STATE['objects'].pop(name, None)

    def close(self):
        STATE['closed_ioctxs'] += 1


class Rados:
    def __init__(self, conffile=None, rados_id=None, conf=None):
        self.conffile = conffile
        self.rados_id = rados_id
        self.conf = conf
        STATE['last_rados'] = self

    def connect(self, timeout=0):
        n = STATE['connect_error'] or int(os.environ.get('FAKE_RADOS_CONNECT_ERRNO', '0'))
        if n:
            raise Error('connect failed', -n)

    def get_fsid(self):
        return STATE['fsid']

    def pool_exists(self, pool):
        return pool in STATE['pools']

    def open_ioctx(self, pool):
        if pool not in STATE['pools']:
            raise ObjectNotFound('no pool %s' % pool, errno.ENOENT)
        return Ioctx(pool)

    def mon_command(self, cmd, inbuf, timeout=0):
        prefix = json.loads(cmd)['prefix']
        ans = STATE['mon'].get(prefix)
        if ans is None:
            return -errno.EACCES, b'', 'access denied'
        return 0, json.dumps(ans).encode(), ''

    def get_cluster_stats(self):
        return STATE['cluster_stats']

    def shutdown(self):
        STATE['shutdown'] += 1
