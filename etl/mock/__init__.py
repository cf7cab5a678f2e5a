"""Mock account data: a deterministic transaction generator and the prices it trades at."""
