"""What a batch job did, as its task returns it."""

from dataclasses import asdict, dataclass, field


@dataclass
class JobReport:
    """Counters of a subclass, plus the ids of the rows that failed unexpectedly."""

    failed_ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        report = asdict(self)
        report["failed"] = report.pop("failed_ids")
        return report
