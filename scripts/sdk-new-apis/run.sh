#!/bin/sh
# Developer tool, outside `npm test`: compiles ZStack's stock Java SDK from a fetched zstackio/zstack (a git
# directory or a work tree) with Debian's jars (libokhttp-java, libgoogle-gson-java, libcommons-beanutils-java,
# libcommons-codec-java, libservlet-api-java, libcommons-logging-java, libcommons-collections3-java) and runs
# NewApisCheck against a zimage on 127.0.0.1, once per client time zone. The SDK never enters this repository.
# Usage: scripts/sdk-new-apis/run.sh <path to zstackio/zstack> <zimage port> [admin password]
set -eu
SRC=$1
PORT=$2
PASSWORD=${3:-password}
HERE=$(cd "$(dirname "$0")" && pwd)
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
if [ -d "$SRC/sdk/src/main/java" ]; then
  cp -r "$SRC/sdk" "$W/"
else
  git -C "$SRC" archive HEAD sdk/src/main/java | tar -x -C "$W"
fi
J=/usr/share/java
CP="$J/okhttp.jar:$J/okio.jar:$J/gson.jar:$J/commons-beanutils.jar:$J/commons-codec.jar:$J/servlet-api.jar:$J/commons-logging.jar:$J/commons-collections3.jar"
mkdir "$W/classes"
find "$W/sdk" -name '*.java' > "$W/sources"
javac -nowarn -encoding UTF-8 -cp "$CP" -d "$W/classes" @"$W/sources"
javac -cp "$W/classes:$CP" -d "$W/classes" "$HERE/NewApisCheck.java"
for tz in Etc/UTC Asia/Shanghai America/New_York; do
  echo "== client time zone $tz"
  java -Duser.timezone="$tz" -cp "$W/classes:$CP" NewApisCheck "$PORT" "$PASSWORD"
done
