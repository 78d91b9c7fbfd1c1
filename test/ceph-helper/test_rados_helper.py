"""Unit tests of src/storage/ceph/rados_helper.py against the fake rados/rbd modules in fake/.

Run: PYTHONPATH=test/ceph-helper/fake:src/storage/ceph python3 -m unittest discover -s test/ceph-helper
(test/ceph-helper.test.ts does this).
"""
import errno
import io
import json
import os
import subprocess
import sys
import unittest

import rados
import rbd
import rados_helper

HELPER = rados_helper.__file__


def answers(raw):
    """Parses a stream of answers: [(header, payload)]."""
    out = []
    buf = io.BytesIO(raw)
    for line in iter(buf.readline, b''):
        h = json.loads(line)
        out.append((h, buf.read(h['n'])))
    return out


def add_image(name, data, written=None):
    rados.STATE['pools']['rbd'][name] = {'data': bytearray(data), 'written': set(written or [])}


class Base(unittest.TestCase):
    def setUp(self):
        rados.reset()
        self.cluster = rados.Rados()
        self.helper = rados_helper.Helper(rados, rbd, self.cluster, 'rbd', 5)

    def ask(self, *reqs):
        out = io.BytesIO()
        ch = rados_helper.Channel(out)
        for i, r in enumerate(reqs):
            self.helper.answer(json.dumps(dict({'id': i + 1}, **r)).encode() + b'\n', ch)
        return answers(out.getvalue())

    def ok(self, req):
        [(h, data)] = self.ask(req)
        self.assertTrue(h['ok'], h)
        return h['r'], data


class Protocol(Base):
    def test_answers_carry_the_request_id_and_payload_length(self):
        add_image('a', b'x' * 10)
        [(h1, d1), (h2, d2)] = self.ask({'op': 'list'}, {'op': 'exists', 'image': 'a'})
        self.assertEqual((h1['id'], h1['ok'], h1['n'], d1), (1, True, 0, b''))
        self.assertEqual(h1['r'], {'images': ['a']})
        self.assertEqual((h2['id'], h2['r']), (2, {'exists': True, 'size': 10}))

    def test_unknown_op_is_einval(self):
        [(h, _)] = self.ask({'op': 'format-disk'})
        self.assertEqual((h['id'], h['ok'], h['errno']), (1, False, errno.EINVAL))
        self.assertIn('format-disk', h['error'])

    def test_garbage_and_non_objects_are_answered_not_fatal(self):
        out = io.BytesIO()
        ch = rados_helper.Channel(out)
        self.helper.answer(b'{not json\n', ch)
        self.helper.answer(b'[1,2]\n', ch)
        [(h1, _), (h2, _)] = answers(out.getvalue())
        self.assertEqual((h1['id'], h1['ok']), (None, False))
        self.assertEqual((h2['ok'], h2['errno']), (False, errno.EINVAL))

    def test_errors_keep_librados_errno_positive(self):
        [(h, _)] = self.ask({'op': 'rename', 'src': 'missing', 'dst': 'b'})
        self.assertEqual((h['ok'], h['errno']), (False, errno.ENOENT))
        add_image('a', b'')
        add_image('b', b'')
        [(h, _)] = self.ask({'op': 'rename', 'src': 'a', 'dst': 'b'})
        self.assertEqual(h['errno'], errno.EEXIST)

    def test_error_without_errno_is_eio(self):
        self.assertEqual(rados_helper.err_of(ValueError('bad')), (errno.EIO, 'bad'))
        self.assertEqual(rados_helper.err_of(rados.Error('x', -errno.EPERM)), (errno.EPERM, 'x'))
        self.assertEqual(rados_helper.err_of(KeyError()), (errno.EIO, 'KeyError'))


class Reads(Base):
    def test_open_read_at_offset_close(self):
        data = bytes(range(256)) * 64
        add_image('img', data)
        r, _ = self.ok({'op': 'open', 'image': 'img'})
        self.assertEqual(r['size'], len(data))
        h = r['handle']
        r, d = self.ok({'op': 'read', 'handle': h, 'offset': 1000, 'length': 300})
        self.assertEqual((r['length'], d), (300, data[1000:1300]))
        r, d = self.ok({'op': 'read', 'handle': h, 'offset': len(data) - 5, 'length': 100})
        self.assertEqual(d, data[-5:])
        self.assertEqual(self.ok({'op': 'counters'})[0], {'bytesRead': 305, 'handles': 1})
        self.ok({'op': 'close', 'handle': h})
        self.assertEqual(self.ok({'op': 'counters'})[0]['handles'], 0)
        self.assertEqual(rados.STATE['closed'], ['img'])

    def test_read_on_unknown_handle_is_ebadf(self):
        [(h, _)] = self.ask({'op': 'read', 'handle': 42, 'offset': 0, 'length': 1})
        self.assertEqual((h['ok'], h['errno']), (False, errno.EBADF))

    def test_open_missing_image_is_enoent(self):
        [(h, _)] = self.ask({'op': 'open', 'image': 'nope'})
        self.assertEqual(h['errno'], errno.ENOENT)

    def test_stat(self):
        add_image('img', b'a' * (rbd.OBJECT_SIZE * 2 + 1))
        r, _ = self.ok({'op': 'stat', 'image': 'img'})
        self.assertEqual((r['size'], r['objectSize'], r['objects'], r['id']), (rbd.OBJECT_SIZE * 2 + 1, rbd.OBJECT_SIZE, 3, 'id-img'))


class Usage(Base):
    def test_counts_written_objects_whole_and_clips_the_last(self):
        o = rbd.OBJECT_SIZE
        add_image('img', b'\0' * (o * 4 + 100), written=[0, 2, 4])
        r, _ = self.ok({'op': 'usage', 'image': 'img'})
        self.assertEqual(r, {'bytes': o * 2 + 100, 'extents': 3, 'size': o * 4 + 100})

    def test_reuses_an_open_handle(self):
        add_image('img', b'\0' * 10, written=[0])
        self.ok({'op': 'open', 'image': 'img'})
        opened = len(rados.STATE['opened'])
        self.assertEqual(self.ok({'op': 'usage', 'image': 'img'})[0]['bytes'], 10)
        self.assertEqual(len(rados.STATE['opened']), opened)
        self.assertNotIn('closed', rados.STATE)

    def test_closes_its_own_handle(self):
        add_image('img', b'', written=[])
        self.assertEqual(self.ok({'op': 'usage', 'image': 'img'})[0]['bytes'], 0)
        self.assertEqual(rados.STATE['closed'], ['img'])


class Changes(Base):
    def test_remove_and_remove_missing(self):
        add_image('img', b'')
        self.assertEqual(self.ok({'op': 'remove', 'image': 'img'})[0], {'removed': True})
        self.assertEqual(self.ok({'op': 'remove', 'image': 'img'})[0], {'removed': False})
        self.assertEqual(rados.STATE['full_try'], 1)  # removes may free a full pool

    def test_rename(self):
        add_image('a.zimage-part-1', b'abc')
        self.ok({'op': 'rename', 'src': 'a.zimage-part-1', 'dst': 'a'})
        self.assertEqual(self.ok({'op': 'list'})[0], {'images': ['a']})

    def test_exists(self):
        self.assertEqual(self.ok({'op': 'exists', 'image': 'x'})[0], {'exists': False})


class Writes(Base):
    def send(self, req, data):
        """One request with a payload, as zimage sends it: the header line then the bytes."""
        out = io.BytesIO()
        line = json.dumps(dict({'id': 1, 'n': len(data)}, **req)).encode() + b'\n'
        inp = io.BufferedReader(io.BytesIO(data))
        self.helper.answer(line, rados_helper.Channel(out), inp)
        [(h, _)] = answers(out.getvalue())
        return h

    def test_openw_cut_then_writes_grow_the_image(self):
        add_image('p', b'abcdefgh')
        r, _ = self.ok({'op': 'openw', 'image': 'p', 'cut': 5})
        self.assertEqual(r['size'], 5)
        h = r['handle']
        self.assertEqual(self.send({'op': 'write', 'handle': h, 'offset': 5}, b'XYZ')['r'], {'size': 8})
        self.assertEqual(self.send({'op': 'write', 'handle': h, 'offset': 8}, b'0' * 5000)['r'], {'size': 5008})
        self.ok({'op': 'close', 'handle': h})
        self.assertEqual(bytes(rados.STATE['pools']['rbd']['p']['data']), b'abcdeXYZ' + b'0' * 5000)

    def test_openw_cuts_and_refuses_a_shorter_image(self):
        add_image('p', b'abcdefgh')
        r, _ = self.ok({'op': 'openw', 'image': 'p', 'cut': 3})
        self.assertEqual(r['size'], 3)
        self.ok({'op': 'close', 'handle': r['handle']})
        self.assertEqual(self.ok({'op': 'openw', 'image': 'p', 'cut': 4})[0], {'size': 3})
        self.assertEqual(rados.STATE['closed'][-1], 'p')
        self.assertEqual(bytes(rados.STATE['pools']['rbd']['p']['data']), b'abc')

    def test_write_inside_does_not_shrink(self):
        add_image('p', b'abcdefgh')
        h = self.ok({'op': 'openw', 'image': 'p'})[0]['handle']
        self.assertEqual(self.send({'op': 'write', 'handle': h, 'offset': 1}, b'BC')['r'], {'size': 8})
        self.assertEqual(bytes(rados.STATE['pools']['rbd']['p']['data']), b'aBCdefgh')

    def test_short_payload_is_eio_and_missing_image_enoent(self):
        add_image('p', b'')
        h = self.ok({'op': 'openw', 'image': 'p'})[0]['handle']
        out = io.BytesIO()
        line = json.dumps({'id': 1, 'op': 'write', 'handle': h, 'offset': 0, 'n': 10}).encode() + b'\n'
        self.helper.answer(line, rados_helper.Channel(out), io.BufferedReader(io.BytesIO(b'abc')))
        [(e, _)] = answers(out.getvalue())
        self.assertEqual((e['ok'], e['errno']), (False, errno.EIO))
        [(m, _)] = self.ask({'op': 'openw', 'image': 'nope'})
        self.assertEqual((m['ok'], m['errno']), (False, errno.ENOENT))

    def test_payload_in_a_helper_process(self):
        add_image('p', b'')
        settings = {'pool': 'rbd', 'user': 'admin', 'conf': {}, 'timeout': 5}
        stdin = json.dumps(settings).encode() + b'\n'
        stdin += json.dumps({'id': 1, 'op': 'list'}).encode() + b'\n'
        stdin += json.dumps({'id': 2, 'op': 'write', 'handle': 99, 'offset': 0, 'n': 5}).encode() + b'\nab\ncd'
        stdin += json.dumps({'id': 3, 'op': 'counters'}).encode() + b'\n'
        p = subprocess.run([sys.executable, HELPER], input=stdin, capture_output=True, timeout=30)
        out = answers(p.stdout)
        # The payload (with a newline in it) is consumed, not read as a request line.
        self.assertEqual([(h['id'], h['ok']) for h, _ in out], [(0, True), (1, True), (2, False), (3, True)])
        self.assertEqual(out[2][0]['errno'], errno.EBADF)


class Status(Base):
    def test_missing_pool(self):
        rados.STATE['pools'] = {}
        r, _ = self.ok({'op': 'status'})
        self.assertEqual((r['exists'], r['quorum']['errno']), (False, errno.EACCES))
        self.assertNotIn('df', r)

    def test_sub_answers_and_probe(self):
        rados.STATE['mon'] = {'df': {'pools': []}, 'osd pool get': {'size': 3}}
        r, _ = self.ok({'op': 'status', 'probe': True})
        self.assertEqual(r['size'], {'size': 3})
        self.assertEqual(r['quota']['errno'], errno.EACCES)  # a restricted key: optional, not fatal
        self.assertEqual(r['probe'], {'ok': True})
        self.assertEqual(rados.STATE['objects'], {})  # the probe object was removed

    def test_full_pool_probe(self):
        rados.STATE['write_error'] = -errno.EDQUOT
        r, _ = self.ok({'op': 'status', 'probe': True})
        self.assertEqual(r['probe']['errno'], errno.EDQUOT)


class Process(unittest.TestCase):
    """The helper run as zimage runs it: settings line, requests on stdin, answers on stdout."""

    def run_helper(self, stdin, env_extra=None):
        env = dict(os.environ, **(env_extra or {}))
        return subprocess.run([sys.executable, HELPER], input=stdin, capture_output=True, env=env, timeout=30)

    def test_session(self):
        settings = {'pool': 'rbd', 'user': 'admin', 'conf': {'mon_host': '127.0.0.1'}, 'timeout': 5}
        reqs = [{'id': 1, 'op': 'list'}, {'id': 2, 'op': 'counters'}]
        stdin = b''.join(json.dumps(x).encode() + b'\n' for x in [settings] + reqs)
        p = self.run_helper(stdin)
        self.assertEqual(p.returncode, 0, p.stderr)
        out = answers(p.stdout)
        self.assertEqual(out[0][0], {'id': 0, 'ok': True, 'r': {'fsid': rados.STATE['fsid']}, 'n': 0})
        self.assertEqual([h['id'] for h, _ in out[1:]], [1, 2])
        self.assertEqual(out[1][0]['r'], {'images': []})

    def test_missing_bindings(self):
        broken = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'broken')
        p = self.run_helper(b'{}\n', {'PYTHONPATH': broken})
        [(h, _)] = answers(p.stdout)
        self.assertEqual((h['id'], h['ok'], h['errno'], p.returncode), (0, False, errno.ENOPKG, 3))
        self.assertIn('cannot import the Ceph Python bindings', h['error'])

    def test_connect_failure(self):
        settings = {'pool': 'rbd', 'user': 'admin', 'conf': {}, 'timeout': 5}
        p = self.run_helper(json.dumps(settings).encode() + b'\n', {'FAKE_RADOS_CONNECT_ERRNO': str(errno.ETIMEDOUT)})
        [(h, _)] = answers(p.stdout)
        self.assertEqual((h['id'], h['ok'], h['errno'], p.returncode), (0, False, errno.ETIMEDOUT, 4))

if __name__ == '__main__':
    unittest.main()
