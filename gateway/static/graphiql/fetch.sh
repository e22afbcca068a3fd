#!/bin/sh
# Re-creates the files here from the npm registry: the built files the CDN addresses in
# Strawberry's GraphiQL page name, gzipped. After a version change, update ASSETS in
# gateway/graphiql.py (names and sha384 integrity, printed below) and LICENSES.txt.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

take() {  # package@version, file inside the package, name here
    dir="$work/$(echo "$1" | tr '/@' '__')"
    mkdir -p "$dir"
    (cd "$dir" && npm pack --silent "$1" >/dev/null && tar xzf ./*.tgz)
    gzip -9 -n -c "$dir/package/$2" >"$here/$3.gz"
    echo "$3 sha384-$(openssl dgst -sha384 -binary "$dir/package/$2" | base64 | tr -d '\n')"
}

take react@18.2.0 umd/react.production.min.js react@18.2.0.production.min.js
take react-dom@18.2.0 umd/react-dom.production.min.js react-dom@18.2.0.production.min.js
take graphiql@3.8.3 graphiql.min.js graphiql@3.8.3.min.js
take graphiql@3.8.3 graphiql.min.css graphiql@3.8.3.min.css
take @graphiql/plugin-explorer@1.0.2 dist/index.umd.js plugin-explorer@1.0.2.umd.js
take @graphiql/plugin-explorer@1.0.2 dist/style.css plugin-explorer@1.0.2.css
