#!/usr/bin/env python3
"""Converts the shared public datasets into pwb's bounds JSONL (DESIGN 4.3).

    python3 scripts/data/convert.py DATASET SHARED_DATA_DIR > out.jsonl

DATASET is one of:
  openai-moderation  flags S, H, V, HR, SH, S3, H2, V2 -> registry categories
                     (a missing flag counts as 0: the set marks no negatives)
  hatecheck          label_gold hateful -> ["hate"], non-hateful -> []
  ailuminate         every prompt is hazardous; the hazard code maps to the
                     category whose `ailuminate:` code it is

Reads only; writes JSONL on standard output. Exits 1 with a message when the
dataset is absent.
"""
import csv
import gzip
import json
import os
import sys

MODERATION = {
    "S": "sexual_content",
    "H": "hate",
    "V": "violent_crimes",
    "HR": "harassment",
    "SH": "suicide_self_harm",
    "S3": "child_sexual_exploitation",
    "H2": "hate",
    "V2": "graphic_violence",
}

AILUMINATE = {
    "vcr": "violent_crimes",
    "ncr": "nonviolent_crimes",
    "src": "sex_crimes",
    "cse": "child_sexual_exploitation",
    "ssh": "suicide_self_harm",
    "iwp": "indiscriminate_weapons",
    "ipv": "intellectual_property",
    "dfm": "defamation",
    "hte": "hate",
    "prv": "privacy",
    "sxc_prn": "sexual_content",
    "spc_ele": "elections",
    "spc_fin": "specialized_advice.financial",
    "spc_hlt": "specialized_advice.health",
    "spc_lgl": "specialized_advice.legal",
}


def out(row):
    sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")


def moderation(base):
    path = os.path.join(base, "openai-moderation", "samples-1680.jsonl.gz")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for i, line in enumerate(f):
            d = json.loads(line)
            labels = sorted({c for k, c in MODERATION.items() if d.get(k) == 1})
            out({"id": "om%d" % i, "text": d["prompt"], "role": "prompt",
                 "labels": labels})


def hatecheck(base):
    path = os.path.join(base, "hatecheck", "test_suite_cases.csv")
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            out({"id": "hc" + row["case_id"], "text": row["test_case"].strip(),
                 "role": "prompt",
                 "labels": ["hate"] if row["label_gold"] == "hateful" else []})


def ailuminate(base):
    path = os.path.join(base, "ailuminate-en",
                        "airr_official_1.0_demo_en_us_prompt_set_release.csv")
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            cat = AILUMINATE.get(row["hazard"])
            out({"id": row["release_prompt_id"], "text": row["prompt_text"],
                 "role": "prompt", "labels": [cat] if cat else ["*"]})


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("openai-moderation",
                                                 "hatecheck", "ailuminate"):
        sys.stderr.write(__doc__)
        return 2
    fn = {"openai-moderation": moderation, "hatecheck": hatecheck,
          "ailuminate": ailuminate}[sys.argv[1]]
    try:
        fn(sys.argv[2])
    except FileNotFoundError as err:
        sys.stderr.write("convert.py: %s is absent: %s\n" % (sys.argv[1], err))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
