"""A fake of python3-rbd for rados_helper.py's unit tests: images are bytearrays in rados.STATE."""
import errno

import rados


class ImageNotFound(rados.Error):
    def __init__(self, message):
        super().__init__(message, errno.ENOENT)


class ImageExists(rados.Error):
    def __init__(self, message):
        super().__init__(message, errno.EEXIST)


OBJECT_SIZE = 1 << 12  # small objects so tests exercise many


def images():
    return rados.STATE['pools'][rados.STATE.setdefault('pool', 'rbd')]


class Image:
    def __init__(self, ioctx, name, read_only=False):
        if name not in images():
            raise ImageNotFound('image %s not found' % name)
        self.name = name
        self.closed = False
        rados.STATE.setdefault('opened', []).append(name)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def data(self):
        return images()[self.name]['data']

    def size(self):
        return len(self.data())

    def get_name(self):
        return self.name

    def id(self):
        return 'id-' + self.name

    def features(self):
        return 61

    def stat(self):
        size = self.size()
        return {'size': size, 'obj_size': OBJECT_SIZE, 'num_objs': (size + OBJECT_SIZE - 1) // OBJECT_SIZE,
                'block_name_prefix': 'rbd_data.' + self.id()}

    def read(self, offset, length):
        if offset > self.size():
            raise rados.Error('read past the end', errno.EINVAL)
        return bytes(self.data()[offset:offset + length])

    def write(self, data, offset):
        if offset + len(data) > self.size():
            raise rados.Error('write past the end', errno.EINVAL)
        self.data()[offset:offset + len(data)] = data
        images()[self.name].setdefault('written', set()).update(
            range(offset // OBJECT_SIZE, (offset + len(data) + OBJECT_SIZE - 1) // OBJECT_SIZE))
        return len(data)

    def resize(self, size):
        d = self.data()
        if size < len(d):
            del d[size:]
        else:
            d.extend(bytes(size - len(d)))

    def diff_iterate(self, offset, length, from_snapshot, cb, include_parent=True, whole_object=False):
        written = images()[self.name].get('written', set())
        for start in range(offset, offset + length, OBJECT_SIZE):
            n = min(OBJECT_SIZE, offset + length - start)
            if start // OBJECT_SIZE in written:
                cb(start, n, True)

    def close(self):
        self.closed = True
        rados.STATE.setdefault('closed', []).append(self.name)


class RBD:
    def list(self, ioctx):
        return sorted(images())

    def remove(self, ioctx, name):
        if name not in images():
            raise ImageNotFound('image %s not found' % name)
        del images()[name]

    def rename(self, ioctx, src, dst):
        if src not in images():
            raise ImageNotFound('image %s not found' % src)
        if dst in images():
            raise ImageExists('image %s exists' % dst)
        images()[dst] = images().pop(src)
