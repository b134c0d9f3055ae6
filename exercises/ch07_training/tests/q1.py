OK_FORMAT = True

test = {   'name': 'q1',
    'points': 2,
    'suites': [   {   'cases': [   {   'code': '>>> from demucs_course.grading_guard import own_work\n'
                                               ">>> OWN = dict(allow=['demucs_course.model.center_trim'])\n"
                                               '>>> e, s = (torch.zeros(2, 4, 2, 10), torch.full((2, 4, 2, 10), 2.0))\n'
                                               '>>> with own_work(**OWN):\n'
                                               "...     l1, l2 = (separation_loss(e, s, 'l1'), separation_loss(e, s, 'l2'))\n"
                                               ">>> assert torch.isclose(l1, torch.tensor(2.0)), 'l1 is the mean of |estimate - source|'\n"
                                               ">>> assert torch.isclose(l2, torch.tensor(4.0)), 'l2 is the mean of (estimate - source)^2'\n",
                                       'hidden': False,
                                       'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
