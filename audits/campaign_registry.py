"""Campaign specs in the store: register one under its name, read one back. Kept apart from the
runner (which loads torch and the models) so that status, reports and the CLI's light commands start
fast."""

from __future__ import annotations

from sqlalchemy import select

from audits.campaign_spec import CampaignSpec
from audits.errors import SpecError
from audits.scenario_library import Scenario
from audits.store import SQLACampaign, Store


def register_campaign(store: Store, spec: CampaignSpec) -> int:
    """Store a campaign spec under its name; the same name with a different spec is refused."""
    with store.session() as session:
        existing = session.scalar(select(SQLACampaign).where(SQLACampaign.name == spec.name))
        if existing is not None:
            if existing.spec_hash != spec.spec_hash():
                raise SpecError(
                    f"campaign {spec.name!r} is already registered with a different spec "
                    f"({existing.spec_hash[:12]} vs {spec.spec_hash()[:12]}); give the changed spec a new name"
                )
            return existing.id
        row = SQLACampaign(
            name=spec.name,
            description=spec.description,
            spec_json=spec.model_dump(mode="json"),
            spec_hash=spec.spec_hash(),
        )
        session.add(row)
        session.flush()
        return row.id


def load_campaign_spec(store: Store, name: str, library: dict[str, Scenario]) -> tuple[int, CampaignSpec]:
    """A registered campaign's id and spec."""
    with store.session() as session:
        row = session.scalar(select(SQLACampaign).where(SQLACampaign.name == name))
        known = session.scalars(select(SQLACampaign.name).order_by(SQLACampaign.name)).all()
    if row is None:
        raise SpecError(f"no campaign named {name!r} in {store.name}; known: {', '.join(known) or 'none'}")
    return row.id, CampaignSpec.model_validate(row.spec_json, context={"library": library})
