"""Knowledge documents and BM25 search: Markdown sections, ranking, filters, pickling, and real tickets."""

from __future__ import annotations

import csv
import gzip
import os
import pickle
from collections import Counter
from pathlib import Path

import pytest

from opsrail.knowledge import REFERENCE_DIR, Document, KnowledgeIndex, load_markdown_folder, reference_folder, tokenize

TICKETS = Path(
    os.environ.get(
        "OPSRAIL_TICKETS_CSV",
        str(Path(__file__).resolve().parents[2].parent / "shared/data/it_tickets/tickets_train.csv.gz"),
    )
)


@pytest.fixture(scope="module")
def reference() -> KnowledgeIndex:
    return KnowledgeIndex.build(load_markdown_folder(REFERENCE_DIR))


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_markdown_sections_have_heading_paths_anchors_and_front_matter(tmp_path: Path) -> None:
    write(
        tmp_path / "guides" / "vpn.md",
        "---\nkind: policy\nowner: Security\n---\nIntro before any heading.\n\n# VPN guide\n\n## Setup\n"
        "Install the client.\n\n### Linux\nUse the deb package.\n```bash\n# not a heading\napt install vpn\n```\n"
        "## Setup\nA second setup section.\n\n## Empty\n## Problems & fixes!\nRestart it.\n",
    )
    docs = {doc.id: doc for doc in load_markdown_folder(tmp_path)}

    assert list(docs) == [
        "guides/vpn.md",
        "guides/vpn.md#setup",
        "guides/vpn.md#linux",
        "guides/vpn.md#setup-1",
        "guides/vpn.md#problems--fixes",
    ]
    linux = docs["guides/vpn.md#linux"]
    assert linux.title == "VPN guide > Setup > Linux"
    assert linux.kind == "policy"
    assert linux.source == "guides/vpn.md#linux"
    assert "# not a heading" in linux.text
    assert linux.metadata["owner"] == "Security"
    assert linux.metadata["path"] == "guides/vpn.md"
    assert linux.metadata["level"] == 3
    assert docs["guides/vpn.md"].text == "Intro before any heading."
    assert docs["guides/vpn.md#setup-1"].title == "VPN guide > Setup"


def test_kind_comes_from_front_matter_then_folder_then_default(tmp_path: Path) -> None:
    write(tmp_path / "policies" / "refunds.md", "# Refunds\nNo cash refunds.\n")
    write(tmp_path / "policies" / "special.md", "---\nkind: Playbook\n---\n# Special\nText.\n")
    write(tmp_path / "loose.md", "# Loose\nText.\n")
    write(tmp_path / "notes.txt", "# Ignored\nNot Markdown.\n")

    kinds = {doc.id: doc.kind for doc in load_markdown_folder(tmp_path)}
    assert kinds == {
        "loose.md#loose": "runbook",
        "policies/refunds.md#refunds": "policy",
        "policies/special.md#special": "playbook",
    }
    plain = {doc.id: doc.kind for doc in load_markdown_folder(tmp_path, kind_from_front_matter=False)}
    assert plain["policies/special.md#special"] == "policy"


def test_reference_folder_ships_runbooks_and_policies() -> None:
    assert reference_folder() == REFERENCE_DIR
    kinds = {doc.kind for doc in load_markdown_folder(reference_folder())}
    assert kinds == {"runbook", "policy"}


def test_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(NotADirectoryError):
        load_markdown_folder(tmp_path / "nope")


def test_tokens_keep_identifiers_and_numbers() -> None:
    tokens = tokenize("The SAML assertions for INV-1234 failed at 09:12 on v2.3 of the SSO app")
    assert {"saml", "assertion", "inv-1234", "inv", "1234", "sso", "fail", "09:12", "v2.3"} <= set(tokens)
    assert "the" not in tokens
    assert "for" not in tokens


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("SAML assertion failed during SSO setup", "runbooks/sso-onboarding-troubleshooting.md#saml-assertion-errors"),
        ("service credit for a premium plan at 99.2% availability", "policies/service-credits.md#credit-amounts"),
        ("who approves a credit above 10,000 USD", "policies/service-credits.md#approval"),
        ("put INV-1234 on hold, the customer disputes it", "policies/invoice-holds.md#when-to-place-a-hold"),
        ("page the incident commander for a sev1", "runbooks/sev1-escalation.md#declare-the-incident"),
        ("production database access approval", "policies/access-requests.md#privileged-and-production-access"),
    ],
)
def test_the_obviously_relevant_section_ranks_first(reference: KnowledgeIndex, query: str, expected: str) -> None:
    hits = reference.search(query, k=3)
    assert hits[0].source == expected
    assert hits[0].score > hits[1].score
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)


def test_hits_carry_the_best_sentence_as_snippet(reference: KnowledgeIndex) -> None:
    hit = reference.search("SAML assertion failed", k=1)[0]
    assert hit.kind == "runbook"
    assert hit.title == "SSO onboarding troubleshooting > SAML assertion errors"
    assert hit.snippet.startswith('"SAML assertion failed"')
    assert len(hit.snippet) <= 201
    assert hit.metadata["owner"] == "Identity Support"


def test_kinds_filter_and_exclusions(reference: KnowledgeIndex) -> None:
    policies = reference.search("escalate sev1 incident", k=10, kinds={"policy"})
    assert policies
    assert {hit.kind for hit in policies} == {"policy"}
    assert reference.search("escalate", kinds={"no-such-kind"}) == []

    first = reference.search("SAML assertion failed", k=3)
    without = reference.search("SAML assertion failed", k=3, exclude_ids={first[0].id})
    assert first[0].id not in {hit.id for hit in without}
    assert without[0].id == first[1].id


def test_empty_query_empty_index_and_unknown_words(reference: KnowledgeIndex) -> None:
    assert reference.search("") == []
    assert reference.search("   ") == []
    assert reference.search("the and of") == []
    assert reference.search("zyxwvut") == []
    assert reference.search("SAML", k=0) == []
    assert KnowledgeIndex.build([]).search("SAML") == []


def test_equal_scores_keep_insertion_order() -> None:
    docs = [Document(id=f"d{i}", kind="case", title="", text="printer jam", source=f"case:d{i}") for i in range(4)]
    index = KnowledgeIndex.build(docs)
    assert [hit.id for hit in index.search("printer", k=3)] == ["d0", "d1", "d2"]


def test_add_appends_and_replaces_by_id() -> None:
    index = KnowledgeIndex.build(
        [
            Document(id="c1", kind="case", title="VPN down", text="vpn tunnel drops", source="case:c1"),
            Document(id="c2", kind="case", title="Laptop", text="laptop battery swollen", source="case:c2"),
        ]
    )
    index.add([Document(id="c3", kind="case", title="Printer", text="printer jam tray 2", source="case:c3")])
    assert [hit.id for hit in index.search("printer jam")] == ["c3"]

    index.add([Document(id="c1", kind="case", title="Printer again", text="printer toner empty", source="case:c1")])
    assert len(index) == 3
    assert index.search("vpn tunnel") == []
    assert {hit.id for hit in index.search("printer")} == {"c1", "c3"}


def test_index_survives_pickling(reference: KnowledgeIndex) -> None:
    restored = pickle.loads(pickle.dumps(reference))
    query = "invoice hold longer than 14 days"
    assert restored.search(query) == reference.search(query)
    assert len(restored) == len(reference)


def _tickets(limit: int) -> list[tuple[str, str]]:
    if not TICKETS.exists():
        pytest.skip(f"ticket data not found at {TICKETS}")
    with gzip.open(TICKETS, "rt", encoding="utf-8", newline="") as handle:
        rows = []
        for row in csv.DictReader(handle):
            rows.append((row["Document"], row["Topic_group"]))
            if len(rows) == limit:
                break
    return rows


def test_similar_tickets_share_the_topic_far_more_often_than_chance() -> None:
    tickets = _tickets(2000)
    docs = [
        Document(id=f"t{i}", kind="case", title="", text=text, source=f"case:t{i}", metadata={"topic": topic})
        for i, (text, topic) in enumerate(tickets)
    ]
    index = KnowledgeIndex.build(docs)
    shares = Counter(topic for _, topic in tickets)
    chance = sum((count / len(tickets)) ** 2 for count in shares.values())

    precisions = []
    for i in range(0, len(tickets), 10):
        text, topic = tickets[i]
        hits = index.search(text, k=5, exclude_ids={f"t{i}"})
        assert f"t{i}" not in {hit.id for hit in hits}
        precisions.append(sum(hit.metadata["topic"] == topic for hit in hits) / 5)
    precision = sum(precisions) / len(precisions)

    assert chance < 0.25
    assert precision > chance + 0.2, (precision, chance)
