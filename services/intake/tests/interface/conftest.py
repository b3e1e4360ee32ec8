"""Intake in a real Nameko container on a fresh vhost and fresh databases, for every interface test here."""

import pytest

from services.intake.service import IntakeService


@pytest.fixture
def intake(container_factory, service_config):
    container = container_factory(IntakeService, service_config)
    container.start()
    return container
