"""OpenStack server states -> normalized host status."""

from sync.choices import HostStatusChoices as S

__all__ = ["API_STATUS", "VM_STATE", "host_status"]

# Nova's vm_state (notifications: ``state``), lower case.
VM_STATE: dict[str, str] = {
    "building": S.BUILDING,
    "active": S.ACTIVE,
    "stopped": S.STOPPED,
    "paused": S.PAUSED,
    "suspended": S.SUSPENDED,
    "shelved": S.SHELVED,
    "shelved_offloaded": S.SHELVED,
    "rescued": S.RESCUED,
    "resized": S.RESIZED,
    "soft-delete": S.SOFT_DELETED,
    "soft_deleted": S.SOFT_DELETED,
    "deleted": S.DELETED,
    "error": S.ERROR,
}

# The compute API's server ``status`` (upper case in responses).
API_STATUS: dict[str, str] = {
    "ACTIVE": S.ACTIVE,
    "BUILD": S.BUILDING,
    "SHUTOFF": S.STOPPED,
    "STOPPED": S.STOPPED,
    "PAUSED": S.PAUSED,
    "SUSPENDED": S.SUSPENDED,
    "SHELVED": S.SHELVED,
    "SHELVED_OFFLOADED": S.SHELVED,
    "RESCUE": S.RESCUED,
    "VERIFY_RESIZE": S.RESIZED,
    "RESIZE": S.ACTIVE,
    "MIGRATING": S.ACTIVE,
    "REBOOT": S.ACTIVE,
    "HARD_REBOOT": S.ACTIVE,
    "PASSWORD": S.ACTIVE,
    "REBUILD": S.BUILDING,
    "REVERT_RESIZE": S.ACTIVE,
    "SOFT_DELETED": S.SOFT_DELETED,
    "DELETED": S.DELETED,
    "ERROR": S.ERROR,
    "UNKNOWN": S.UNKNOWN,
}


def host_status(value: str | None) -> str:
    """Map a vm_state or API status (any case) to a HostStatusChoices value."""
    if not value:
        return S.UNKNOWN
    text = str(value).strip()
    return VM_STATE.get(text.lower()) or API_STATUS.get(text.upper()) or S.UNKNOWN
