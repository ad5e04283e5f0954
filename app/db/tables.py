"""The database schema. Columns carry the contract's field names; CHECKs mirror its bounds."""

from datetime import datetime
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    Uuid,
    text,
)
from sqlmodel import Field, SQLModel

# The contract's UserId: the subjects identity providers issue.
USER_ID_CHECK = (
    "char_length(id) BETWEEN 1 AND 255 AND id ~ '^[A-Za-z0-9_|:@-][A-Za-z0-9_.|:@-]{0,254}$'"
)


class User(SQLModel, table=True):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(USER_ID_CHECK, name="users_id_format"),
        CheckConstraint("task_count >= 0", name="users_task_count_not_negative"),
        CheckConstraint(
            "completed_count BETWEEN 0 AND task_count", name="users_completed_count_bounds"
        ),
    )

    id: str = Field(sa_column=Column(String(255), primary_key=True))
    email: str | None = Field(default=None, sa_column=Column(String(320), nullable=True))
    # Move in the statements that write the user's tasks: the per-user limit, and the counts.
    task_count: int = Field(sa_column=Column(Integer, nullable=False, server_default=text("0")))
    completed_count: int = Field(
        sa_column=Column(Integer, nullable=False, server_default=text("0"))
    )
    created_at: datetime = Field(
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=text("now()"))
    )


class Task(SQLModel, table=True):
    __tablename__ = "tasks"
    __table_args__ = (
        CheckConstraint(
            "char_length(title) BETWEEN 1 AND 200 AND title ~ '[^\\t\\n\\r ]'",
            name="tasks_title_bounds",
        ),
        CheckConstraint(
            "description IS NULL OR char_length(description) <= 1000",
            name="tasks_description_bounds",
        ),
        CheckConstraint(
            "is_completed = (completed_at IS NOT NULL)", name="tasks_completed_at_matches"
        ),
        # Lists, pages and searches walk a user's tasks in creation order, either way.
        Index("tasks_user_created_id", "user_id", "created_at", "id"),
        {"postgresql_with": {"fillfactor": 80}},
    )

    id: UUID = Field(
        sa_column=Column(Uuid, primary_key=True, server_default=text("gen_random_uuid()"))
    )
    user_id: str = Field(
        sa_column=Column(String(255), ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    )
    title: str = Field(sa_column=Column(String(200), nullable=False))
    description: str | None = Field(default=None, sa_column=Column(String(1000), nullable=True))
    is_completed: bool = Field(
        sa_column=Column(Boolean, nullable=False, server_default=text("false"))
    )
    completed_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    created_at: datetime = Field(
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=text("now()"))
    )
    updated_at: datetime = Field(
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=text("now()"))
    )
    # Moves by one in the statement that changes the task: the task's entity tag.
    version: int = Field(sa_column=Column(BigInteger, nullable=False, server_default=text("1")))


class IdempotencyKey(SQLModel, table=True):
    """The first answer to a create that carried an Idempotency-Key, kept for replays."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        Index("idempotency_keys_expires_at", "expires_at"),
        Index("idempotency_keys_user_id_expires_at", "user_id", "expires_at"),
    )

    user_id: str = Field(
        sa_column=Column(String(255), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    )
    key: str = Field(sa_column=Column(String(255), primary_key=True))
    fingerprint: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    status: int = Field(sa_column=Column(SmallInteger, nullable=False))
    body: str = Field(sa_column=Column(Text, nullable=False))
    # The contract's Location: at most 815 characters, the longest id percent-encoded whole.
    location: str = Field(sa_column=Column(String(815), nullable=False))
    etag: str = Field(sa_column=Column(String(64), nullable=False))
    # The created task, whose fields a replay takes when the contract's Task gained one since.
    task_id: UUID | None = Field(default=None, sa_column=Column(Uuid, nullable=True))
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
