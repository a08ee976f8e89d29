#!/usr/bin/env python3
"""Converts the shared public datasets into pwb's JSONL (DESIGN 4.3).

    python3 scripts/data/convert.py DATASET SHARED_DATA_DIR > out.jsonl

DATASET is one of:
  openai-moderation  flags S, H, V, HR, SH, S3, H2, V2 -> registry categories
                     (a missing flag counts as 0: the set marks no negatives)
  hatecheck          label_gold hateful -> ["hate"], non-hateful -> []
  ailuminate         every prompt is hazardous; the hazard code maps to the
                     category whose `ailuminate:` code it is
  davidson           class 0 (hate speech) -> ["hate"], 1 (offensive
                     language) -> ["profanity"], 2 (neither) -> []
  toxigen            label hate -> ["hate"], neutral -> []
  codealpaca         every instruction (with its input) -> []: benign
                     programming tasks full of words like kill and execute
  self-instruct      every seed task's instruction -> []: benign tasks
  hh-rlhf-chosen     the last assistant turn of each chosen dialogue, as a
                     response -> []: the less harmful answer raters picked,
                     often a refusal or a careful answer on a risky topic

Every line also carries metadata for `pwb eval bounds --group-by`: `source`
(the dataset), and where the set has them `functionality` and `target`
(HateCheck), `group` (ToxiGen), `hazard` and `persona` (AILuminate).

and, as feedback events for `pwb eval prefs`:
  hh-rlhf-prefs      each chosen/rejected dialogue pair: the shared dialogue
                     up to the last "Assistant:" turn is the prompt, the two
                     last turns are chosen and rejected; no user (the set
                     names no annotator); rows whose last turns are equal or
                     empty are left out
  hatecheck-prefs    each annotator (label_1 .. label_10) is a user and each
                     of their labels a rating of the test case on [0, 1]:
                     non-hateful 1, hateful 0; the set gives no times, so ts
                     is a fixed pseudo-random order of the cases (a hash of
                     the case id), the same for every annotator

Reads only; writes JSONL on standard output. Exits 1 with a message when the
dataset is absent.
"""
import csv
import gzip
import hashlib
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
                 "labels": labels, "source": "openai-moderation"})


def hatecheck(base):
    path = os.path.join(base, "hatecheck", "test_suite_cases.csv")
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            out({"id": "hc" + row["case_id"], "text": row["test_case"].strip(),
                 "role": "prompt",
                 "labels": ["hate"] if row["label_gold"] == "hateful" else [],
                 "source": "hatecheck",
                 "functionality": row["functionality"],
                 "target": row.get("target_ident") or "none"})


def ailuminate(base):
    path = os.path.join(base, "ailuminate-en",
                        "airr_official_1.0_demo_en_us_prompt_set_release.csv")
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            cat = AILUMINATE.get(row["hazard"])
            out({"id": row["release_prompt_id"], "text": row["prompt_text"],
                 "role": "prompt", "labels": [cat] if cat else ["*"],
                 "source": "ailuminate", "hazard": row["hazard"],
                 "persona": row["persona"]})


DAVIDSON = {"0": ["hate"], "1": ["profanity"], "2": []}


def davidson(base):
    path = os.path.join(base, "davidson", "labeled_data.csv.gz")
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            text = row["tweet"].strip()
            if text:
                out({"id": "dv" + row[""], "text": text, "role": "prompt",
                     "labels": DAVIDSON[row["class"]], "source": "davidson"})


def toxigen(base):
    path = os.path.join(base, "toxigen", "sentences.jsonl")
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            d = json.loads(line)
            out({"id": "tg%d" % i, "text": d["text"], "role": "prompt",
                 "labels": ["hate"] if d["label"] == "hate" else [],
                 "source": "toxigen", "group": d["group"]})


def codealpaca(base):
    path = os.path.join(base, "codealpaca", "code_alpaca_2k.json.gz")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for i, d in enumerate(json.load(f)):
            text = d["instruction"].strip()
            if d.get("input", "").strip():
                text += "\n" + d["input"].strip()
            out({"id": "ca%d" % i, "text": text, "role": "prompt",
                 "labels": [], "source": "codealpaca"})


def self_instruct(base):
    path = os.path.join(base, "self-instruct", "seed_tasks.jsonl")
    with open(path, encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            out({"id": d["id"], "text": d["instruction"].strip(),
                 "role": "prompt", "labels": [], "source": "self-instruct"})


ASSISTANT = "\n\nAssistant:"


def last_turn(dialogue):
    i = dialogue.rfind(ASSISTANT)
    if i < 0:
        return None, None
    return dialogue[:i + len(ASSISTANT)], dialogue[i + len(ASSISTANT):].strip()


def hh_rlhf_prefs(base):
    path = os.path.join(base, "hh-rlhf", "harmless-base_test.jsonl.gz")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for i, line in enumerate(f):
            d = json.loads(line)
            pc, chosen = last_turn(d["chosen"])
            pr, rejected = last_turn(d["rejected"])
            if not chosen or not rejected or chosen == rejected:
                continue
            prompt = pc if pc == pr else os.path.commonprefix([pc, pr])
            out({"id": "hh%d" % i, "prompt": prompt.strip(),
                 "chosen": chosen, "rejected": rejected, "ts": i})


def hh_rlhf_chosen(base):
    path = os.path.join(base, "hh-rlhf", "harmless-base_test.jsonl.gz")
    seen = set()
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for i, line in enumerate(f):
            _, chosen = last_turn(json.loads(line)["chosen"])
            if not chosen or chosen in seen:
                continue
            seen.add(chosen)
            out({"id": "hhc%d" % i, "text": chosen, "role": "response",
                 "labels": [], "source": "hh-rlhf-chosen"})


def hatecheck_prefs(base):
    path = os.path.join(base, "hatecheck", "test_suite_annotations.csv")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    def order(row):
        return hashlib.blake2b(row["case_id"].encode(), digest_size=8).digest()
    for ts, row in enumerate(sorted(rows, key=order)):
        text = row["test_case"].strip()
        if not text:
            continue
        for k in range(1, 11):
            label = row.get("label_%d" % k, "")
            if label not in ("hateful", "non-hateful"):
                continue
            out({"id": "hc%s-a%d" % (row["case_id"], k),
                 "user": "annotator_%d" % k, "response": text,
                 "rating": 1 if label == "non-hateful" else 0,
                 "scale": [0, 1], "ts": ts})


def main():
    fns = {"openai-moderation": moderation, "hatecheck": hatecheck,
           "ailuminate": ailuminate, "davidson": davidson,
           "toxigen": toxigen, "codealpaca": codealpaca,
           "self-instruct": self_instruct, "hh-rlhf-chosen": hh_rlhf_chosen,
           "hh-rlhf-prefs": hh_rlhf_prefs,
           "hatecheck-prefs": hatecheck_prefs}
    if len(sys.argv) != 3 or sys.argv[1] not in fns:
        sys.stderr.write(__doc__)
        return 2
    fn = fns[sys.argv[1]]
    try:
        fn(sys.argv[2])
    except FileNotFoundError as err:
        sys.stderr.write("convert.py: %s is absent: %s\n" % (sys.argv[1], err))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
