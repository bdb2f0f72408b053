"""A TUF client for the tests: python-tuf, the reference implementation.

Usage: tuf_client.py METADATA_URL ROOT_JSON TARGET
Trusts ROOT_JSON, refreshes from METADATA_URL (targets under /targets/),
and prints TARGET's content. Exits non-zero, with the reason, when any
metadata fails to verify or has expired.
"""

import os
import shutil
import sys
import tempfile

from tuf.ngclient import Updater


def main() -> int:
    url, root, target = sys.argv[1:4]
    work = tempfile.mkdtemp()
    meta = os.path.join(work, "metadata")
    os.mkdir(meta)
    shutil.copy(root, os.path.join(meta, "root.json"))
    updater = Updater(
        metadata_dir=meta,
        metadata_base_url=url,
        target_base_url=url.rstrip("/") + "/targets/",
        target_dir=work,
    )
    try:
        updater.refresh()
        info = updater.get_targetinfo(target)
        if info is None:
            print(f"no target {target}", file=sys.stderr)
            return 1
        with open(updater.download_target(info), encoding="utf-8") as f:
            sys.stdout.write(f.read())
    except Exception as e:  # the reason is what the test shows
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
