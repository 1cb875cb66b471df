"""The Slack edge: the Bolt app, messages and mrkdwn, action ids, the Web API client and poster."""
