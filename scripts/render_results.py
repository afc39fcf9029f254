#!/usr/bin/env python3
"""Renders every number README.md and docs/REPRODUCTION.md take from a run, from that run's
committed results (docs/results/RUN/: summary.json and paired.md as `taia demo` wrote them, and
run.json: the command, commit, machine, date and wall time).

A rendered block in a Markdown file is the text between

    <!-- rendered: BLOCK RUN -->
    ...
    <!-- /rendered -->

and is the output of BLOCKS[BLOCK] on docs/results/RUN. `--write` replaces every block with what
the results give; `--check` (the default; ctest `docs.rendered`) exits 1 naming each block whose
text differs, with a diff.

usage: render_results.py [--check | --write] [REPO_ROOT]
"""
import difflib
import json
import os
import re
import sys

FILES = ["README.md", "docs/REPRODUCTION.md"]
BLOCK = re.compile(r"(<!-- rendered: (\S+) (\S+) -->\n)(.*?)(<!-- /rendered -->)", re.S)
MODES = ["base", "vanilla", "taia", "taif"]


class Run:
    """One committed run: its summary rows by (experiment, task), claims and provenance."""

    def __init__(self, root, name):
        self.name = name
        self.dir = os.path.join(root, "docs", "results", name)
        self.summary = json.load(open(os.path.join(self.dir, "summary.json")))
        self.info = json.load(open(os.path.join(self.dir, "run.json")))
        self.paired_md = open(os.path.join(self.dir, "paired.md")).read()
        self.rows = {(r["experiment"], r["task"]): r for r in self.summary["rows"]}
        self.settings = self.summary["settings"]
        self.experiments = self.settings["experiments"]
        self.modes = self.settings.get("modes", MODES)  # the run's table columns (older runs: the four)

    def has(self, experiment, task, mode="base"):
        row = self.rows.get((experiment, task))
        return row is not None and mode in row["modes"]

    def mean(self, experiment, task, mode):
        return self.rows[(experiment, task)]["modes"][mode]["mean"]

    def pct(self, experiment, task, mode):
        """A mean accuracy in %, one decimal."""
        return f"{100 * self.mean(experiment, task, mode):.1f}"

    def claim(self, experiment, task, pair):
        for c in self.summary["claims"]:
            if c["experiment"] == experiment and c["task"] == task and c["pair"] == pair:
                return c
        return None

    def provenance(self):
        """Which run a number is from: preset, worlds, seeds, commit."""
        s = self.settings
        worlds = s.get("world_seeds", [s.get("world_seed", 0)])
        return (f"`{self.name}`: preset {s['preset']}, world{'s' if len(worlds) > 1 else ''} "
                f"{', '.join(str(w) for w in worlds)}, seeds {', '.join(str(x) for x in s['seeds'])}, "
                f"commit {self.info['commit']}")


def value(row, mode):
    e = row["modes"][mode]
    if row.get("metric") == "bits_per_token":
        return f"{e['mean']:.3f} ± {e['std']:.3f}" if mode != "base" else f"{e['mean']:.3f}"
    return f"{100 * e['mean']:.1f} ± {100 * e['std']:.1f}" if mode != "base" else f"{100 * e['mean']:.1f}"


def shots_of(task):
    m = re.match(r"(.*)@(\d+)shot$", task)
    return (m.group(1), int(m.group(2))) if m else (task, 0)


# ---- blocks ---------------------------------------------------------------------------------

def run_header(run):
    i = run.info
    return (f"```sh\n{i['command']}\n```\n\n" + wrap(
        f"Run {run.provenance()} ({i['date']}, {i['machine']}). Wall time {i['wall_time']}"
        f"{' (' + i['note'] + ')' if i.get('note') else ''}. Files: `docs/results/{run.name}/` (`summary.json`, "
        f"`results.json`, `paired.md`, `table.md` as `taia demo` wrote them; `run.json`).") + "\n")


def recipe(run):
    """What the preset built, from the pretrained model's recipe and the settings."""
    r = dict(kv.split("=", 1) for kv in run.summary["pretrained"]["recipe"].split()[1:])
    s = run.settings
    lora = s["lora"]
    lines = (f"- **World**: {r['known_test']} *known_test* people (in pretraining; the knowledge that is tested), "
            f"{r['known_mix']} *known_mix* (in pretraining, also asked about in its chat dialogues), {r['fresh']} "
            f"*fresh* (never in pretraining; the OOD fine-tuning sets are about them).\n"
            f"- **Pretraining corpus**: every fact of the known people in several phrasings, {r['rounds']} shuffled "
            f"rounds, {r['per_doc']} sentences per document, chat dialogues of {r['chat_turns']} turns about the "
            f"known_mix people (filler share {r['filler']}).\n"
            f"- **Tokenizer**: SentencePiece BPE, {r['vocab']} pieces.\n"
            f"- **Model**: LLaMA architecture, {r['layers']} layers, hidden {r['hidden']}, {r['heads']} heads, "
            f"SwiGLU {r['intermediate']}, vocab {r['vocab']}; pretrained {r['steps']} steps x {r['batch']} documents "
            f"of up to {r['max_length']} tokens, lr {r['lr']}" + (
                f"; final loss {run.summary['pretrained']['pretrain_final_loss']:.3f}.\n"
                if "pretrain_final_loss" in run.summary["pretrained"] else
                " (this run took it from the cache; the recipe names it).\n") +
            f"- **Fine-tuning**: experiments {', '.join('`' + e + '`' for e in run.experiments)}; "
            f"{s['finetune_records']} records, {s['finetune_steps']} steps x {s['finetune_batch']}; LoRA r "
            f"{lora['rank']}, alpha {lora['alpha']}, lr {lora['lr']}, all seven projections; full fine-tuning lr "
            f"{s['full_lr']}; seeds {', '.join(str(x) for x in s['seeds'])}.")
    return "\n".join(wrap(line, indent="  ") for line in lines.split("\n")) + "\n"


def result_table(run):
    """Every 0-shot row, and the few-shot rows joined per experiment."""
    modes = run.modes
    lines = ["| experiment | task | " + " | ".join(modes) + " |", "|---|---|" + "---|" * len(modes)]
    for experiment in run.experiments:
        shots = {}
        for (e, task), row in run.rows.items():
            if e != experiment:
                continue
            name, k = shots_of(task)
            if k:
                shots.setdefault(name, []).append((k, row))
                continue
            lines.append(f"| {experiment} | {task} | " + " | ".join(value(row, m) if m in row["modes"] else ""
                                                                  for m in modes) + " |")
        for name, rows in shots.items():
            rows.sort(key=lambda kr: kr[0])
            ks = "/".join(str(k) for k, _ in rows)
            cells = [" / ".join(f"{100 * r['modes'][m]['mean']:.1f}" for _, r in rows) if all(
                m in r["modes"] for _, r in rows) else "" for m in modes]
            lines.append(f"| {experiment} | {name}@{ks}shot | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def paired_table(run):
    return run.paired_md


def _p(v):
    return "" if v is None else f"{v:.3f}" if v >= 0.001 else "< 0.001"


def claims(run):
    corrected = any("verdict_corrected" in c for c in run.summary["claims"])
    lines = ["| experiment | claim | difference (points, 95 % interval) | verdict |" +
             (" Holm p | simultaneous interval | verdict (Holm) |" if corrected else ""),
             "|---|---|---|---|" + ("---|---|---|" if corrected else "")]
    for c in run.summary["claims"]:
        k = 100.0
        line = (f"| {c['experiment']} | {c['claim']} | {k * c['mean']:+.1f} [{k * c['low']:+.1f}, "
                f"{k * c['high']:+.1f}] | {c['verdict']} |")
        if corrected and c.get("verdict_corrected"):
            line += (f" {_p(c.get('p_holm'))} | [{k * c['low_corrected']:+.1f}, {k * c['high_corrected']:+.1f}] | "
                     f"{c['verdict_corrected']} |")
        elif corrected:
            line += " | | outside the family |"
        lines.append(line)
    return "\n".join(lines) + "\n"


# The paper's claims and the test of each in the third edition's run (claim text prefix, experiments).
OVERVIEW = [
    ("OOD fine-tuning: TAIA keeps more pretrained knowledge than vanilla", "paired TAIA - vanilla on knowledge_chat",
     "TAIA keeps more pretrained knowledge than vanilla", ("facts-lora", "facts-full", "skill-lora")),
    ("... because the FFN update is the harmful part (not because TAIA moves less)", "C1: TAIA - scaled (vanilla at TAIA's norm)",
     "C1:", ("facts-lora", "facts-full", "skill-lora", "country-lora")),
    ("", "C2: TAIA - random-half (whole modules, the attention set's parameters)", "C2:",
     ("facts-lora", "facts-full", "skill-lora", "country-lora")),
    ("", "C3: TAIA - early (vanilla stopped at TAIA's norm)", "C3:", ("facts-lora", "skill-lora", "country-lora")),
    ("", "TAIA - TAIF", "TAIA beats TAIF on the knowledge test", ("facts-lora", "facts-full", "skill-lora")),
    ("TAIA beats the base model", "paired TAIA - base on knowledge_chat", "TAIA beats the base model",
     ("facts-lora", "facts-full", "skill-lora")),
    ("TAIA learns a skill from OOD data", "H1: TAIA - base on the composed skill", "H1:", ("country-lora",)),
    ("", "B1: TAIA - always the majority answer", "B1:", ("country-lora",)),
    ("", "B2: TAIA - TAIA after permuted labels", "B2:", ("country-lora",)),
    ("", "C4-C6: TAIA - each update-size control on the skill", ("C4:", "C5:", "C6:"), ("country-lora",)),
    ("TAIA keeps in-context learning", "P1: the base gains from demonstrations (precondition)", "P1:", None),
    ("", "I1: TAIA's ICL slope - vanilla's", "I1:", ("facts-lora", "facts-full", "skill-lora", "country-lora")),
]


def _scale(run):
    """The run's model size, worlds, seeds and the intervals' degrees of freedom."""
    r = dict(kv.split("=", 1) for kv in run.summary["pretrained"]["recipe"].split()[1:])
    worlds = run.settings.get("world_seeds", [run.settings.get("world_seed", 0)])
    seeds = len(run.settings["seeds"])
    by_world = run.settings.get("interval_unit") == "world"
    df = len(worlds) - 1 if by_world else len(worlds) * seeds - 1
    return (f"{r['layers']} layers x {r['hidden']}, {len(worlds)} world{'s' if len(worlds) > 1 else ''} x {seeds} "
            f"seed{'s' if seeds > 1 else ''}, intervals over {'worlds' if by_world else 'runs'} (df {df})")


def _overview_cells(run, prefixes, experiments):
    cells = []
    for c in run.summary["claims"]:
        if not any(c["claim"].startswith(p) for p in prefixes):
            continue
        if experiments is not None and c["experiment"] not in experiments:
            continue
        label = c["claim"].split(":")[0] + " " if len(prefixes) > 1 else ""
        if c.get("verdict_corrected"):
            raw = f" ({c['verdict']})" if c["verdict"] != c["verdict_corrected"] else ""
            cells.append(f"{label}`{c['experiment']}` {c['verdict_corrected']}{raw} {100 * c['mean']:+.1f} "
                         f"[{100 * c['low_corrected']:+.1f}, {100 * c['high_corrected']:+.1f}]")
        else:  # outside the family (a precondition, or a claim not judged): its 95 % interval
            cells.append(f"{label}`{c['experiment']}` {c['verdict']} {100 * c['mean']:+.1f} "
                         f"[{100 * c['low']:+.1f}, {100 * c['high']:+.1f}] (95 %)")
    return "; ".join(cells) if cells else "not run"


def overview(runs):
    """The opening table: each claim of the paper, its test, and per run (a column each: its scale,
    worlds and degrees of freedom) the Holm verdicts with the simultaneous intervals."""
    runs = runs if isinstance(runs, list) else [runs]
    family = ", ".join(f"`{run.name}` {sum(1 for c in run.summary['claims'] if c.get('verdict_corrected'))}"
                       for run in runs)
    lines = [wrap("Each cell: the verdict after Holm's correction over the run's family of claims about TAIA "
                  f"({family} claims; in brackets the uncorrected verdict where it differs), the difference in "
                  "points and its simultaneous interval; a precondition and the claims it leaves unjudged stand "
                  "outside the family, with their 95 % interval."), "",
             "| the paper's claim | the test | " + " | ".join(f"`{run.name}`: {_scale(run)}" for run in runs) + " |",
             "|---|---|" + "---|" * len(runs)]
    for paper, test, prefixes, experiments in OVERVIEW:
        prefixes = prefixes if isinstance(prefixes, tuple) else (prefixes,)
        lines.append(f"| {paper} | {test} | " +
                     " | ".join(_overview_cells(run, prefixes, experiments) for run in runs) + " |")
    return "\n".join(lines) + "\n"


def baselines(run):
    """The skill's reference levels and the ICL precondition, from the run's pretrained facts."""
    p = run.summary["pretrained"]
    out = []
    b = p.get("skill_baselines")
    if b:
        out.append(f"- **Country test references** ({b['n']} held-out people): chance {100 * b['chance']:.2f} %, always "
                   f"answering the fine-tuning set's most frequent country ({b['majority_answer']}) "
                   f"{100 * b['majority_acc']:.1f} %" + (
                       f"; TAIA after the label-permuted run {run.pct('country_shuffled-lora', 'country', 'taia')} %, "
                       f"vanilla {run.pct('country_shuffled-lora', 'country', 'vanilla')} %"
                       if run.has("country_shuffled-lora", "country", "taia") else "") + ".")
    icl = p.get("icl_base_slope")
    if icl:
        ks = [t for t in ("icl_k0", "icl_k1", "icl_k2", "icl_k4", "icl_k8") if run.has(run.experiments[0], t)]
        e = run.experiments[0]
        out.append(f"- **In-context-learning precondition**: the base's accuracy at {', '.join(t[5:] for t in ks)} "
                   f"shots: {' / '.join(run.pct(e, t, 'base') for t in ks)} %; slope {100 * icl['mean']:+.1f} points "
                   f"per doubling of 1 + shots [{100 * icl['low']:+.1f}, {100 * icl['high']:+.1f}] over {icl['n']} "
                   f"examples.")
    return "\n".join(wrap(line, indent="  ") for line in out) + "\n"


def noise_sweep(run):
    """The noise sweep (results.json noise_sweep): per share of wrong fine-tuning answers, TAIA and
    vanilla on the knowledge test and the new facts, and TAIA - vanilla with its 95 % interval."""
    sw = json.load(open(os.path.join(run.dir, "results.json")))["noise_sweep"]
    lines = [wrap(f"Experiment `{sw['experiment']}`; accuracy in %, mean over the runs of each level; TAIA - "
                  f"vanilla paired within runs, 95 % interval over the "
                  f"{_unit_phrase(sw['levels'][0]['knowledge_chat']['difference'])}."),
             "", "| wrong answers | knowledge_chat: TAIA / vanilla | TAIA - vanilla | facts: TAIA / vanilla | TAIA - vanilla |",
             "|---|---|---|---|---|"]
    for lv in sw["levels"]:
        cells = []
        for task in ("knowledge_chat", "facts"):
            t = lv.get(task)
            if t is None:
                cells += ["", ""]
                continue
            d = t["difference"]
            cells += [f"{100 * t['taia']:.1f} / {100 * t['vanilla']:.1f}",
                      f"{100 * d['mean']:+.1f} [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}]"]
        lines.append(f"| {100 * lv['noise']:.0f} % | " + " | ".join(cells) + " |")
    stop = sw["taia_stops_winning_at"]
    lines.append("")
    lines.append(wrap("The first level whose knowledge interval is not above 0 (TAIA stops winning): " +
                      (f"{100 * stop:.0f} % wrong answers." if stop is not None else "none of these levels.")))
    return "\n".join(lines) + "\n"


def _unit_phrase(d):
    return f"{d['n']} {d.get('unit', 'run')}s"


def neurons(run):
    """`taia analyze --neurons` on one of the run's adapters (docs/results/RUN/neurons.json, with
    neurons-command.txt): per layer and mode the RMS change of all FFN neurons' activations and of
    the top ones, and which neurons those are."""
    j = json.load(open(os.path.join(run.dir, "neurons.json")))
    modes = [m for m in ("taia", "taif", "vanilla") if m in j["neurons"]]
    k = len(j["neurons"][modes[0]]["layers"][0]["neurons"])
    path = j["path"].rstrip("/")
    shown = "runs/" + path.split("/runs/", 1)[1] if "/runs/" in path else path
    lines = [wrap(f"Adapter `{shown}` on "
                  f"{j['neurons'][modes[0]]['tokens']} tokens of held-out text. Per layer and mode: the root mean "
                  f"square change per token of all FFN neurons' activations act(gate) * up / the mean of the top {k} "
                  f"/ the top {k} neurons' indices."), "",
             "| layer | " + " | ".join(modes) + " |", "|---|" + "---|" * len(modes)]
    for i, layer in enumerate(j["neurons"][modes[0]]["layers"]):
        cells = []
        for m in modes:
            L = j["neurons"][m]["layers"][i]
            top = L["neurons"]
            cells.append(f"{L['rms_change']:.3f} / {sum(n['rms_change'] for n in top) / len(top):.3f} / "
                         + ", ".join(str(n["neuron"]) for n in top))
        lines.append(f"| {layer['layer']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _knowledge_sentence(run, experiment):
    kc = "knowledge_chat"
    return (f"TAIA {run.pct(experiment, kc, 'taia')} vs vanilla {run.pct(experiment, kc, 'vanilla')} "
            f"(`{experiment}`)")


def beside_paper(run):
    """The comparisons the paper's claims rest on, each stated from the numbers it cites."""
    ood = [e for e in run.experiments if e.split("-")[0] in ("facts", "skill")]
    kc = "knowledge_chat"
    out = []
    wins = [e for e in ood if run.mean(e, kc, "taia") > run.mean(e, kc, "vanilla")]
    out.append(f"- **TAIA against vanilla on the OOD knowledge test** (`knowledge_chat`): TAIA ahead in {len(wins)} of "
               f"{len(ood)} experiments: " + "; ".join(_knowledge_sentence(run, e) for e in ood) + ". Plain-text "
               "completion: " + "; ".join(f"TAIA {run.pct(e, 'knowledge_completion', 'taia')} vs vanilla "
                                          f"{run.pct(e, 'knowledge_completion', 'vanilla')}" for e in ood) + ".")
    verdicts = [run.claim(e, kc, "taia-vanilla") for e in ood]
    out.append("  Paired over seeds: " + ", ".join(f"`{e}` {c['verdict']}" for e, c in zip(ood, verdicts) if c) + ".")
    base = [e for e in ood if run.has(e, kc)]
    above = [e for e in base if max(run.mean(e, kc, m) for m in ("vanilla", "taia", "taif")) > run.mean(e, kc, "base")]
    out.append(f"- **TAIA against the base on knowledge the base has**: the base answers "
               f"{run.pct(base[0], kc, 'base')} %; a fine-tuned mode beats it in {len(above)} of {len(base)} "
               f"experiments (best: " + "; ".join(
                   f"`{e}` {max(('vanilla', 'taia', 'taif'), key=lambda m: run.mean(e, kc, m))} "
                   f"{max(100 * run.mean(e, kc, m) for m in ('vanilla', 'taia', 'taif')):.1f}" for e in base) + ")."
               + (" " if not above else "")
               + ("The paper's TAIA beats its base because its fine-tuning data teaches instruction following the "
                  "base lacks; this base already answers in the test's format, so every update costs knowledge and "
                  "TAIA only loses less." if not above else ""))
    taif = [(e, run.claim(e, kc, "taia-taif")) for e in ood]
    out.append("- **TAIA against TAIF** (the paper: the FFN update is the harmful part): " + "; ".join(
        f"`{e}` TAIA {run.pct(e, kc, 'taia')} vs TAIF {run.pct(e, kc, 'taif')} ({c['verdict'] if c else 'no pair'})"
        for e, c in taif) + ".")
    in_dist = [(e, e.split("-")[0]) for e in ood if run.has(e, e.split("-")[0], "vanilla")]
    if in_dist:
        out.append("- **The fine-tuning task itself** (in-distribution): " + "; ".join(
            f"`{e}` vanilla {run.pct(e, t, 'vanilla')}, TAIA {run.pct(e, t, 'taia')}, TAIF {run.pct(e, t, 'taif')}"
            for e, t in in_dist) + "." + "".join(
                f" On `{e}`'s held-out problems no mode reaches 5 %: the skill is not learned in a way that "
                "generalises, so that experiment measures what OOD fine-tuning breaks, not what it teaches."
                for e, t in in_dist if t == "skill" and all(run.mean(e, t, m) < 0.05 for m in MODES)))
    four = [e for e in ood if run.has(e, kc + "@4shot")]
    if four:
        out.append("- **Few-shot** (`knowledge_chat` with 4 demonstrations): " + "; ".join(
            f"`{e}` base {run.pct(e, kc + '@4shot', 'base')}, vanilla {run.pct(e, kc + '@4shot', 'vanilla')}, TAIA "
            f"{run.pct(e, kc + '@4shot', 'taia')}" for e in four) + f" (0 shots: base {run.pct(four[0], kc, 'base')}).")
    country = [e for e in run.experiments if e.split("-")[0] == "country"]
    for e in country:
        h1 = run.claim(e, "country", "taia-base")
        out.append(f"- **A skill the base lacks** (`{e}`: the country of held-out known people, chance 6.25 %): base "
                   f"{run.pct(e, 'country', 'base')}, vanilla {run.pct(e, 'country', 'vanilla')}, TAIA "
                   f"{run.pct(e, 'country', 'taia')}, TAIF {run.pct(e, 'country', 'taif')}; TAIA > base "
                   f"{h1['verdict'] if h1 else 'not paired'}.")
    return "\n".join(wrap(line, indent="  ") for line in out) + "\n"


def readme_demo(run):
    kc, e = "knowledge_chat", "facts-lora"
    four = kc + "@4shot"
    s = (f"The measured result, beside the paper's, is in `docs/REPRODUCTION.md`; in the default run "
         f"({run.provenance()}), after LoRA fine-tuning on questions about other people TAIA answers "
         f"{run.pct(e, kc, 'taia')} % of the chat questions about the pretrained people where vanilla answers "
         f"{run.pct(e, kc, 'vanilla')} % (the base: {run.pct(e, kc, 'base')} %)")
    if run.has(e, four):
        s += (f", {run.pct(e, four, 'taia')} vs {run.pct(e, four, 'vanilla')} % with 4 demonstrations in the "
              f"prompt")
    s += (f", and completes {run.pct(e, 'knowledge_completion', 'taia')} % of the facts in plain text where vanilla "
          f"completes {run.pct(e, 'knowledge_completion', 'vanilla')} %; vanilla is best on the fine-tuning task "
          f"itself ({run.pct(e, 'facts', 'vanilla')} vs TAIA {run.pct(e, 'facts', 'taia')} %).")
    country = [x for x in run.experiments if x.startswith("country-")]
    if country:
        c = country[0]
        h1 = run.claim(c, "country", "taia-base")
        s += (f" The country skill (composed of pretraining knowledge, `{c}`) reaches held-out people: TAIA "
              f"{run.pct(c, 'country', 'taia')} % against the base's {run.pct(c, 'country', 'base')} % "
              f"(TAIA > base {h1['verdict'] if h1 else 'not paired'} over the seeds; chance 6.25 %), vanilla "
              f"{run.pct(c, 'country', 'vanilla')} "
              f"%, TAIF {run.pct(c, 'country', 'taif')} %.")
    if run.has(e, kc, "scaled") and run.has(e, kc, "random-half") and run.has(e, kc, "early"):
        stands = [x for x in run.summary["claims"] if x.get("verdict_corrected") in ("reproduced", "contradicted")]
        same = all((run.claim(e, kc, p) or {}).get("verdict") == "not shown" for p in ("taia-scaled", "taia-random-half"))
        s += (f" Against updates of TAIA's size (`{e}`, knowledge): vanilla scaled to TAIA's norm "
              f"{run.pct(e, kc, 'scaled')} %, a random half of the modules {run.pct(e, kc, 'random-half')} %, vanilla "
              f"stopped at TAIA's norm {run.pct(e, kc, 'early')} %" +
              (" — TAIA's differences from the first two hold 0, so the knowledge kept comes with moving less, not "
               "with dropping the FFN in particular" if same else "") +
              f"; after Holm's correction over the run's claims {len(stands)} verdict"
              f"{'s stand' if len(stands) != 1 else ' stands'} ({len(run.settings['seeds'])} seeds).")
    return wrap(s) + "\n"


def wrap(text, width=100, indent=""):
    """text in lines of at most `width` characters (a word longer stands alone), later lines
    after `indent`; a line of text that starts with the indent keeps it."""
    lead = text[:len(text) - len(text.lstrip(" "))]
    lines, line = [], lead
    for w in text.lstrip(" ").split(" "):
        if line.strip() and len(line) + 1 + len(w) > width:
            lines.append(line)
            line = indent + w
        else:
            line = f"{line} {w}" if line.strip() else line + w
    lines.append(line)
    return "\n".join(lines)


BLOCKS = {"run_header": run_header, "recipe": recipe, "result_table": result_table, "paired_table": paired_table,
          "claims": claims, "beside_paper": beside_paper, "readme_demo": readme_demo, "overview": overview,
          "baselines": baselines, "noise_sweep": noise_sweep, "neurons": neurons}
MULTI_RUN_BLOCKS = {"overview"}


def render(root, text, where):
    """text with every rendered block replaced; the problems found."""
    runs, problems = {}, []

    def block(m):
        name, run_name = m.group(2), m.group(3)
        if name not in BLOCKS:
            problems.append(f"{where}: unknown block '{name}' (expected one of {', '.join(BLOCKS)})")
            return m.group(0)
        try:  # RUN, or RUN+RUN+... for a block that sets runs side by side (overview)
            loaded = [runs.setdefault(n, Run(root, n)) for n in run_name.split("+")]
        except (OSError, ValueError, KeyError) as e:
            problems.append(f"{where}: block {name} {run_name}: cannot read docs/results/{run_name}: {e}")
            return m.group(0)
        if len(loaded) > 1 and name not in MULTI_RUN_BLOCKS:
            problems.append(f"{where}: block {name} takes one run, got '{run_name}'")
            return m.group(0)
        try:
            return m.group(1) + BLOCKS[name](loaded if name in MULTI_RUN_BLOCKS else loaded[0]) + m.group(5)
        except (KeyError, IndexError, TypeError) as e:
            problems.append(f"{where}: block {name} {run_name}: the results lack what it renders ({e!r})")
            return m.group(0)

    return BLOCK.sub(block, text), problems


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    write = "--write" in sys.argv
    root = args[0] if args else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    failures = 0
    for f in FILES:
        path = os.path.join(root, f)
        text = open(path).read()
        new, problems = render(root, text, f)
        for p in problems:
            print(p)
        failures += len(problems)
        blocks = len(BLOCK.findall(text))
        if new == text:
            print(f"ok   {f}: {blocks} rendered blocks match their results")
        elif write:
            open(path, "w").write(new)
            print(f"wrote {f}: {blocks} rendered blocks")
        else:
            failures += 1
            print(f"FAIL {f}: rendered blocks differ from what their results give (run scripts/render_results.py "
                  "--write):")
            sys.stdout.writelines(difflib.unified_diff(text.splitlines(True), new.splitlines(True), f, f + " (rendered)"))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
