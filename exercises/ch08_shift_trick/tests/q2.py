OK_FORMAT = True

test = {   'name': 'q2',
    'points': 3,
    'suites': [   {   'cases': [   {   'code': '>>> from demucs_course.grading_guard import own_work\n'
                                               '>>> identity = lambda x: x.expand(4, *x.shape)\n'
                                               '>>> _ = torch.manual_seed(0)\n'
                                               '>>> mix = torch.randn(2, 1000)\n'
                                               '>>> with own_work():\n'
                                               '...     out = shift_average(identity, mix, torch.tensor([0, 3, 17]), 20)\n'
                                               ">>> assert out.shape == (4, 2, 1000), f'expected (4, 2, 1000), got {tuple(out.shape)}'\n"
                                               ">>> assert torch.allclose(out, mix.expand(4, 2, 1000)), 'shifting back must undo the shift exactly'\n",
                                       'hidden': False,
                                       'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
