#!/usr/bin/env python3
"""Prints a Nexmark query of tests/nexmark (verbatim) as a benchmark job: its source switched
to the in-process `nexmark` connector making EVENTS events at once, its sink to a blackhole
(`blackhole`) or to the exactly-once directory `${OUT}` (`files`).
    scripts/nexmark-job.py tests/nexmark/q20/query.sql 20000000 blackhole|files"""
import re
import sys

query, events, sink = sys.argv[1], sys.argv[2], sys.argv[3]
text = open(query).read()
source = """'connector' = 'nexmark',
    'events.num' = '%s',
    'first-event.rate' = '10000',
    'next-event.rate' = '10000'""" % events
text = re.sub(r"'connector' = 'filesystem',\s*'path' = '\$\{INPUT\}',\s*'format' = 'json'",
              source, text, count=1)
if sink == "blackhole":
    text = re.sub(r"'connector' = 'filesystem',\s*'path' = '\$\{OUTPUT\}',\s*'format' = '[a-z-]+'",
                  "'connector' = 'blackhole'", text)
else:
    text = text.replace("${OUTPUT}", "${OUT}")
print(text)
