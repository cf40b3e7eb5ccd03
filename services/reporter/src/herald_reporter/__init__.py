"""herald's reporter: mails the day's delivery statistics once a day."""
