OK_FORMAT = True

test = {   'name': 'q2',
    'points': 3,
    'suites': [   {   'cases': [   {   'code': '>>> from demucs_course.grading_guard import own_work\n'
                                               '>>> _ = torch.manual_seed(0)\n'
                                               '>>> b, s = (8, 4)\n'
                                               '>>> x = (100 * torch.arange(b)[:, None] + torch.arange(s)).float()[..., None, None].expand(b, s, 2, 5).contiguous()\n'
                                               '>>> with own_work():\n'
                                               '...     y = remix(x, 4)\n'
                                               ">>> assert y.shape == x.shape, f'expected shape {tuple(x.shape)}, got {tuple(y.shape)}'\n"
                                               ">>> assert torch.equal(y % 100, x % 100), 'a source must stay the same source (drums stay drums)'\n",
                                       'hidden': False,
                                       'locked': False},
                                   {   'code': '>>> from demucs_course.grading_guard import own_work\n'
                                               '>>> with own_work():\n'
                                               '...     try:\n'
                                               '...         remix(torch.zeros(6, 4, 2, 5), 4)\n'
                                               '...         raised = False\n'
                                               '...     except ValueError:\n'
                                               '...         raised = True\n'
                                               ">>> assert raised, 'remix must raise ValueError when the batch size is not a multiple of group_size'\n",
                                       'hidden': False,
                                       'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
