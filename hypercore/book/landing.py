"""The applications landing page: the review's applications, where each lives, its verdicts.

``book/applications/index.md`` opens the book's "Applications" part. It maps the
review's applications (:data:`APPLICATIONS`, grouped as the book groups them) to
the chapter that reproduces one, the hypercore module that holds its reusable
part, and the verdicts of the chapter's claims. It is generated, like the
scoreboard, from the stored notebooks (:func:`hypercore.book.scoreboard.collect`)
so that the verdicts it shows are the ones the chapters store;
``python -m hypercore.book.scoreboard`` writes both pages.

A chapter that does not exist yet is listed as not written yet; a module is
named only when its file exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hypercore.book.claims import VERDICTS

if TYPE_CHECKING:
    from hypercore.book.scoreboard import Chapter

#: The page, relative to the book folder.
PAGE = Path("applications") / "index.md"


@dataclass(frozen=True)
class Application:
    """One application of the review and where the book treats it."""

    name: str
    #: What the hypernetwork is conditioned on, and what it writes.
    idea: str
    #: The notebook, relative to the book folder.
    chapter: str
    #: The hypercore module with the reusable part (``hypercore.apps.<name>``).
    module: str
    #: The paper whose method the chapter implements (its claims may cite others too).
    paper: str


LEARNING_ACROSS_TASKS = "Learning across tasks"
DISTRIBUTIONS_OVER_WEIGHTS = "Distributions over weights"
SEARCH_COMPRESSION_CONTROL = "Search, compression, control and language"

#: The review's applications in the book's three groups, in reading order.
APPLICATIONS: dict[str, tuple[Application, ...]] = {
    LEARNING_ACROSS_TASKS: (
        Application(
            "Continual learning",
            "a task embedding; writes the task's network, earlier tasks' outputs pinned",
            "applications/continual.ipynb",
            "hypercore.apps.continual",
            "von Oswald et al. (2020)",
        ),
        Application(
            "Transfer learning",
            "a new task embedding learned from a few labels; the hypernetwork frozen",
            "applications/transfer.ipynb",
            "hypercore.apps.transfer",
            "von Oswald et al. (2020)",
        ),
        Application(
            "Domain adaptation",
            "unlabelled samples of a domain; writes that domain's classifier",
            "applications/domain-adaptation.ipynb",
            "hypercore.apps.domain",
            "Volk et al. (2023)",
        ),
        Application(
            "Multitask learning",
            "a preference over the objectives; writes one point of the Pareto front",
            "applications/multitask.ipynb",
            "hypercore.apps.pareto",
            "Navon et al. (2021)",
        ),
        Application(
            "Zero-shot learning",
            "a class description; writes that class's classifier",
            "applications/zero-shot.ipynb",
            "hypercore.apps.zero_shot",
            "Lei Ba et al. (2015)",
        ),
        Application(
            "Few-shot learning",
            "a labelled support set; writes the episode's classifier",
            "applications/few-shot.ipynb",
            "hypercore.apps.few_shot",
            "Sendera et al. (2023)",
        ),
        Application(
            "Federated learning",
            "a client embedding on the server; writes the client's model",
            "applications/federated.ipynb",
            "hypercore.apps.federated",
            "Shamsian et al. (2021)",
        ),
    ),
    DISTRIBUTIONS_OVER_WEIGHTS: (
        Application(
            "Uncertainty quantification",
            "noise; sampled weight sets give a predictive distribution",
            "applications/uncertainty.ipynb",
            "hypercore.apps.uncertainty",
            "Ratzlaff and Fuxin (2019)",
        ),
        Application(
            "Bayesian neural networks",
            "noise; an implicit variational posterior trained with an ELBO",
            "applications/bayesian.ipynb",
            "hypercore.apps.bayesian",
            "Krueger et al. (2017)",
        ),
        Application(
            "Ensembles",
            "noise; generated members of a diverse ensemble",
            "applications/ensembles.ipynb",
            "hypercore.apps.ensembles",
            "Ratzlaff and Fuxin (2019)",
        ),
        Application(
            "Generative models",
            "a latent code; writes an image's coordinate network",
            "applications/generative.ipynb",
            "hypercore.apps.generative",
            "Sitzmann et al. (2020)",
        ),
        Application(
            "Adversarial defence",
            "noise or the input; stochastic or input-dependent weights under attack",
            "applications/adversarial.ipynb",
            "hypercore.apps.adversarial",
            "Pawlowski et al. (2017)",
        ),
    ),
    SEARCH_COMPRESSION_CONTROL: (
        Application(
            "Hyperparameter optimisation",
            "a hyperparameter; writes the best-response weights",
            "applications/hyperparameters.ipynb",
            "hypercore.apps.hyperparameters",
            "Lorraine and Duvenaud (2018)",
        ),
        Application(
            "Neural architecture search",
            "an architecture's graph; writes its weights",
            "applications/architecture-search.ipynb",
            "hypercore.apps.nas",
            "Brock et al. (2018)",
        ),
        Application(
            "Pruning",
            "a channel configuration; writes the pruned network",
            "applications/pruning.ipynb",
            "hypercore.apps.pruning",
            "Liu et al. (2019)",
        ),
        Application(
            "Reinforcement learning",
            "an environment's context; writes the policy",
            "applications/reinforcement.ipynb",
            "hypercore.apps.rl",
            "Sarafian et al. (2021)",
        ),
        Application(
            "Causal inference",
            "a treatment; writes the potential-outcome network",
            "applications/causal.ipynb",
            "hypercore.apps.causal",
            "Chauhan et al. (2023)",
        ),
        Application(
            "Natural language processing",
            "a task; writes adapters of a frozen transformer",
            "applications/nlp.ipynb",
            "hypercore.apps.nlp",
            "Karimi Mahabadi et al. (2021)",
        ),
    ),
}


def _cell(text: object) -> str:
    return " ".join(str(text).split()).replace("|", "\\|") or "-"


def verdict_counts(chapter: Chapter) -> str:
    """``"2 held, 1 did not hold"``: the chapter's stored verdicts, by kind."""
    counts = {v: sum(c.verdict == v for c in chapter.claims) for v in VERDICTS}
    return ", ".join(f"{n} {v}" for v, n in counts.items() if n) or "no stored claim"


def render(chapters: list[Chapter], root: Path) -> str:
    """The landing page (MyST markdown). ``root`` is the repository root (module files)."""
    by_path = {c.path: c for c in chapters}
    written = sum(a.chapter in by_path for group in APPLICATIONS.values() for a in group)
    total = sum(len(group) for group in APPLICATIONS.values())
    lines = [
        "# Applications",
        "",
        "The review of {cite:t}`chauhan2023brief` surveys where hypernetworks are used. "
        "Each chapter of this part takes one application, implements the method of a named "
        "paper with hypercore's parts, and tests the paper's headline claim at a small "
        "scale against the baselines of its field, with the evidence standard of the rest "
        "of the book: the same data, budget and parameter count for every method, several "
        "seeds, an interval and a verdict. The reusable part of each method is a small "
        "module of `hypercore.apps`, imported by the chapter and tested with the library.",
        "",
        "The applications fall into three groups by what the hypernetwork reads: a task "
        "(knowledge shared across tasks), noise (a distribution over networks), or a "
        "hyperparameter, architecture, context or treatment (a search or a family of "
        "models turned into one network). The table below is generated from the stored "
        "chapters (`python -m hypercore.book.scoreboard`); the verdicts link to the "
        "[reproduction scoreboard](../scoreboard.md), which gives every claim in full.",
        "",
        (
            f"Each of the {total} applications has a chapter."
            if written == total
            else f"{written} of the {total} applications have a chapter so far."
        ),
        "",
    ]
    for group, applications in APPLICATIONS.items():
        lines += [
            f"## {group}",
            "",
            "| application (method of) | the hypernetwork reads | chapter, module | verdicts |",
            "| --- | --- | --- | --- |",
        ]
        for app in applications:
            module_file = root / (app.module.replace(".", "/") + ".py")
            module = f"`{app.module}`" if module_file.exists() else ""
            chapter = by_path.get(app.chapter)
            if chapter is None:
                where, verdicts = "not written yet", "-"
            else:
                link = Path(app.chapter).relative_to(PAGE.parent).as_posix()
                where = f"[{Path(app.chapter).stem}]({link})"
                verdicts = f"[{verdict_counts(chapter)}](../scoreboard.md)"
            where = f"{where}, {module}" if module else where
            name = f"{app.name} ({_cell(app.paper)})"
            lines.append(f"| {name} | {_cell(app.idea)} | {where} | {verdicts} |")
        lines.append("")
    return "\n".join(lines)


def write_page(book: Path, chapters: list[Chapter]) -> Path:
    """Regenerate ``book/applications/index.md``; returns its path."""
    page = book / PAGE
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(render(chapters, book.resolve().parent), encoding="utf-8")
    return page
