"""Generated from api/observer.proto by ``make proto`` (do not edit)."""
