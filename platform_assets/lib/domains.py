"""Domains are found, not listed: every package under `platform_assets/defs/` is one.

A domain package exposes one of:
- `defs`: its `dg.Definitions` (assets, checks, jobs, schedules, sensors, resources), or
- `build_defs(domains: dg.Definitions) -> dg.Definitions`: definitions built over every other domain's (the
  cross-domain operations in `defs/quality`), applied after the domains are merged.
A domain may also have a `sample_data` module with `write_sample(size: SampleSize) -> None`; `make run` calls it
before materializing (see `platform_assets.main_run`).

A new domain therefore needs no edit outside its own directory.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

import dagster as dg

DOMAINS_PACKAGE = "platform_assets.defs"


@dataclass(frozen=True)
class SampleSize:
    """How much sample data `make run` writes (rows of the main dataset, days of daily deliveries)."""

    rows: int = 2000
    days: int = 7


@dataclass(frozen=True)
class Domain:
    """One package under `platform_assets/defs/`."""

    name: str
    module: ModuleType

    @property
    def defs(self) -> dg.Definitions | None:
        """The domain's own definitions (None for a cross-domain package)."""
        return getattr(self.module, "defs", None)

    @property
    def build_defs(self) -> Callable[[dg.Definitions], dg.Definitions] | None:
        """The factory of a cross-domain package, called with every domain's merged definitions."""
        return getattr(self.module, "build_defs", None) if self.defs is None else None

    def sample_writer(self) -> Callable[[SampleSize], None] | None:
        """`sample_data.write_sample` when the domain has one."""
        try:
            module = importlib.import_module(f"{self.module.__name__}.sample_data")
        except ModuleNotFoundError as err:
            if err.name != f"{self.module.__name__}.sample_data":
                raise
            return None
        return getattr(module, "write_sample", None)


def load_domains(package: str = DOMAINS_PACKAGE) -> list[Domain]:
    """Every domain package under `package`, by name; a package with neither `defs` nor `build_defs` is an error."""
    root = importlib.import_module(package)
    domains = []
    for info in sorted(pkgutil.iter_modules(root.__path__), key=lambda m: m.name):
        if not info.ispkg or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package}.{info.name}")
        domain = Domain(info.name, module)
        if domain.defs is None and domain.build_defs is None:
            raise TypeError(
                f"{module.__name__} is a domain package but defines neither `defs` (a dg.Definitions) "
                "nor `build_defs(domains)`"
            )
        domains.append(domain)
    return domains


def build_definitions(domains: list[Domain], policy: dg.Definitions) -> dg.Definitions:
    """Merge the domains' definitions, then the cross-domain ones built over them, then the global policy."""
    merged = dg.Definitions.merge(*(d.defs for d in domains if d.defs is not None))
    cross = [d.build_defs(merged) for d in domains if d.build_defs is not None]
    return dg.Definitions.merge(merged, *cross, policy)
