"""What every service shares: errors, identity, permissions, database, change events and their outbox.

Keep this package small: anything that belongs to one service lives in that service's folder.
"""
