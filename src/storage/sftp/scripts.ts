/**
 * The remote side of the SFTP driver: constant POSIX sh scripts (dash, bash, busybox ash…) run as
 * `sh -c <script> zimage <args…>`. No data is ever pasted into a script; paths, names and numbers arrive as
 * positional parameters and are always used in double quotes, with `--` before them on every command.
 *
 * Protocol on the channel:
 *   stderr  `@X <status>`         the script's exit status, always the last line (connection.ts adds it)
 *           `@E <code> [detail]`   a known failure (exit status 3); the driver turns it into a StorageError
 *           `@PID <pid>`          the hashing shell, for a kill on cancel
 *           `@S <bytes>`          size of the file being hashed
 *           `@P <bytes>`          bytes hashed so far
 *           anything else         tool messages, quoted in errors
 *   stdout  the result (`@C`, `@A`, digests)
 *
 * There is no `set -o pipefail` in dash: no script uses a pipeline whose failure could hide. Every process
 * of the hashing job is waited for by pid and any non-zero status fails the whole job.
 */

/** Helpers every script starts with. `real` copes with paths ending in newlines (the `printf x` trick). */
const PRELUDE = String.raw`
fail() { printf '@E %s\n' "$*" >&2; exit 3; }
real() { _r=$(realpath "$@" 2>/dev/null && printf x) || return 1; _r=${'$'}{_r%?x}; }
root() {
  real -e -- "$1" || { [ -e "$1" ] || [ -L "$1" ] || fail noroot; fail noaccess; }
  rr=$_r
  [ -d "$rr" ] || fail notdir
}
inside() {
  real -m -- "$1" || fail invalid
  rp=$_r
  case "$rp" in "$rr"/*) ;; *) fail outside ;; esac
}
`;

const script = (body: string): string => `${PRELUDE}${body}`.trim();

/** Tools the driver uses on the host (sh, kill, printf and command are shell built-ins). */
export const REQUIRED_TOOLS = [
  'openssl',
  'stat',
  'df',
  'dd',
  'realpath',
  'mkfifo',
  'mktemp',
  'tee',
  'sed',
  'sleep',
  'mv',
  'rm',
  'rmdir',
  'mkdir',
  'cat',
];

/** $1 root → `@C <total> <available>`; checks tools, directory, write access. */
export const CONNECT = script(String.raw`
m=
for t in ${REQUIRED_TOOLS.join(' ')}; do command -v "$t" >/dev/null 2>&1 || m="$m $t"; done
[ -z "$m" ] || fail tools$m
root "$1"
pr="$rr/.zimage-probe-$$"
if ! e=$( (set -C; : > "$pr") 2>&1 ); then
  rm -f -- "$pr" 2>/dev/null
  case "$e" in
    *"No space"*|*"quota"*) fail nospace ;;
    *"Read-only"*) fail readonly ;;
    *) fail notwritable ;;
  esac
fi
rm -f -- "$pr"
c=$(df -B1 --output=size,avail -- "$rr" 2>&1) || fail df "$c"
c=$(printf '%s\n' "$c" | sed -n 2p)
set -- $c
printf '@C %s %s\n' "$1" "$2"
`);

/** $1 root, $2 path → `@A <st_blocks> <block unit> <st_size>`. */
export const STAT = script(String.raw`
root "$1"
inside "$2"
[ -e "$rp" ] || fail notfound
[ -f "$rp" ] || fail notfile
s=$(stat -c '%b %B %s' -- "$rp" 2>&1) || fail io "$s"
printf '@A %s\n' "$s"
`);

/** $1 root, $2 path: removes the file, and its image directory when left empty. Missing is fine. */
export const DELETE = script(String.raw`
root "$1"
inside "$2"
if [ -d "$rp" ]; then fail isdir; fi
e=$(rm -f -- "$rp" 2>&1) || fail io "$e"
d=${'$'}{rp%/*}
if [ "${'$'}{d%/*}" = "$rr/images" ]; then rmdir -- "$d" 2>/dev/null; fi
exit 0
`);

/** $1 root, $2 image uuid: removes <root>/images/<uuid> (a planted link is removed, never followed). */
export const DISCARD = script(String.raw`
root "$1"
i="$rr/images"
p="$i/$2"
if [ -L "$p" ]; then e=$(rm -f -- "$p" 2>&1) || fail io "$e"; exit 0; fi
[ -e "$p" ] || exit 0
real -e -- "$i" || fail io
[ "$_r" = "$i" ] || fail imagesoutside
e=$(rm -rf -- "$p" 2>&1) || fail io "$e"
exit 0
`);

/** $1 root, $2 image uuid, $3 bytes needed (0: unknown) → `@D`: the image directory exists, inside the root. */
export const PREPARE = script(String.raw`
root "$1"
i="$rr/images"
if [ -e "$i" ] || [ -L "$i" ]; then
  real -e -- "$i" || fail io
  [ "$_r" = "$i" ] || fail imagesoutside
fi
d="$i/$2"
if [ -L "$d" ]; then fail diroutside; fi
e=$(mkdir -p -- "$d" 2>&1) || fail mkdir "$e"
real -e -- "$d" || fail io
[ "$_r" = "$d" ] || fail diroutside
if [ "$3" -gt 0 ]; then
  a=$(df -B1 --output=avail -- "$d" 2>&1) || fail df "$a"
  a=$(printf '%s\n' "$a" | sed -n '2{s/[^0-9]//g;p;}')
  [ "$a" -ge "$3" ] || fail needspace "$a"
fi
printf '@D\n'
`);

/** $1 temporary file: stdin into a new file (O_EXCL), fsync'ed at the end. */
export const WRITE = String.raw`dd of="$1" bs=1M conv=excl,fsync status=none`;

/** $1 root, $2 temporary file, $3 offset: a suspended import's partial bytes, cut back to $3 bytes (fewer: `short`). */
export const REOPEN = script(String.raw`
root "$1"
inside "$2"
[ -e "$rp" ] || fail notfound
[ -f "$rp" ] || fail notfile
s=$(stat -c %s -- "$rp" 2>&1) || fail io "$s"
[ "$s" -ge "$3" ] || fail short "$s"
e=$(dd if=/dev/null of="$rp" bs=1 seek="$3" count=0 status=none 2>&1) || fail io "$e"
printf '@D\n'
`);

/** $1 temporary file: stdin appended to the partial bytes REOPEN checked, fsync'ed at the end. */
export const APPEND = String.raw`dd of="$1" bs=1M oflag=append conv=notrunc,fsync status=none`;

/** $1 temporary file, $2 final name: the rename that commits an import. */
export const COMMIT = String.raw`e=$(mv -f -T -- "$1" "$2" 2>&1) || { printf '@E io %s\n' "$e" >&2; exit 3; }`;

/** $1 temporary file, $2 image directory: removes an aborted import (the directory only when empty). */
export const ABORT = String.raw`rm -f -- "$1"; rmdir -- "$2" 2>/dev/null; exit 0`;

/** $1 pid: ends a hashing job (its TERM trap kills its children and waits for them). */
export const KILL = String.raw`kill -TERM "$1" 2>/dev/null; exit 0`;

/**
 * $1 root, $2 path, $3… openssl digest names. One algorithm: `openssl dgst` reads the file itself. Several:
 * one `tee` reads it once into a FIFO per `openssl dgst`. Progress is the file offset of the reader
 * (/proc/<pid>/fdinfo/0), printed twice a second; when that print fails (zimage went away) or the shell
 * is gone the watcher kills the job, so a lost connection never leaves a hash running. The watcher also
 * ends by itself once the reader has been reaped: a TERM that reaches it before it has reset the shell's
 * inherited traps (dash drops it) cannot leave it holding the channel open. stdout: one `<hex> *stdin`
 * line per algorithm, in order.
 */
export const HASH = script(String.raw`
root "$1"
inside "$2"
shift 2
[ -e "$rp" ] || fail notfound
[ -f "$rp" ] || fail notfile
[ -r "$rp" ] || fail noread
s=$(stat -L -c %s -- "$rp" 2>&1) || fail io "$s"
printf '@PID %s\n@S %s\n' "$$" "$s" >&2
p=
w=
d=
r=
n=0
trap 'kill $p $w 2>/dev/null; wait; [ -z "$d" ] || rm -rf -- "$d"; exit 143' TERM HUP INT
if [ $# -eq 1 ]; then
  openssl dgst "-$1" -r < "$rp" &
  r=$!
  p=$r
else
  d=$(mktemp -d) || fail io
  for a in "$@"; do
    mkfifo -- "$d/$n" || fail io
    openssl dgst "-$a" -r < "$d/$n" > "$d/$n.out" &
    p="$p $!"
    n=$((n + 1))
  done
  i=0
  set --
  while [ $i -lt $n ]; do set -- "$@" "$d/$i"; i=$((i + 1)); done
  tee -- "$@" < "$rp" > /dev/null &
  r=$!
  p="$p $r"
fi
(
  trap '' PIPE
  while sleep 0.5 </dev/null >/dev/null 2>&1; do
    kill -0 "$r" 2>/dev/null || exit 0
    kill -0 "$$" 2>/dev/null || { kill $p 2>/dev/null; exit 0; }
    x=$(sed -n 's/^pos:[[:space:]]*//p' "/proc/$r/fdinfo/0" 2>/dev/null)
    [ -n "$x" ] || continue
    printf '@P %s\n' "$x" >&2 || { kill $p 2>/dev/null; exit 0; }
  done
) &
w=$!
c=0
for x in $p; do wait "$x" || c=$?; done
kill $w 2>/dev/null
wait $w 2>/dev/null
if [ -n "$d" ]; then
  i=0
  while [ $i -lt $n ]; do cat -- "$d/$i.out"; i=$((i + 1)); done
  rm -rf -- "$d"
fi
exit $c
`);
